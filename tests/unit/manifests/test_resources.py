"""Kubernetes quantities, and the resources one replica of a Service asks for."""

from __future__ import annotations

import pytest

from knray.errors import ManifestError
from knray.manifests import KnativeService, parse_manifests
from knray.manifests.resources import (
    DEFAULT_REPLICA_CPUS,
    ReplicaResources,
    parse_quantity,
    replica_resources,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", 0.5),
        ("2", 2.0),
        (2, 2.0),
        ("1.5", 1.5),
        ("1Gi", 2.0**30),
        ("512Mi", 512 * 2.0**20),
        ("1G", 1e9),
        ("1e3", 1000.0),
        ("100k", 1e5),
    ],
)
def test_quantities_mean_what_kubernetes_says(text: str | int, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "lots", "1 Gi", "1gb", "-1", "Gi", True])
def test_non_quantities_are_refused(text: str | bool) -> None:
    with pytest.raises(ValueError, match=r"quantity|negative"):
        parse_quantity(text)


def _service(resources: str) -> KnativeService:
    text = f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: s}}
spec:
  template:
    spec:
      containers:
        - resources: {resources}
"""
    (service,) = parse_manifests(text).resources
    assert isinstance(service, KnativeService)
    return service


def test_requests_win_over_limits_and_limits_stand_in_for_requests() -> None:
    service = _service('{requests: {cpu: 250m}, limits: {cpu: "1", memory: 1Gi}}')
    assert replica_resources(service) == ReplicaResources(0.25, 2**30, 0.0)


def test_a_service_without_resources_gets_the_default_cpu_share() -> None:
    assert replica_resources(_service("{}")) == ReplicaResources(DEFAULT_REPLICA_CPUS, 0, 0.0)


def test_gpus_must_be_whole_and_bad_quantities_name_their_field() -> None:
    # A share of a GPU is refused when the manifest loads (Kubernetes: extended resources
    # are whole numbers); the error names the field and the resource.
    with pytest.raises(ManifestError) as refused:
        replica_resources(_service('{limits: {nvidia.com/gpu: "0.5"}}'))
    assert refused.value.paths == ["spec.template.spec.containers[0].resources.limits"]
    assert "nvidia.com/gpu" in str(refused.value)
    with pytest.raises(ManifestError) as refused:
        replica_resources(_service("{requests: {cpu: fast}}"))
    assert refused.value.paths == ["spec.template.spec.containers[0].resources.requests.cpu"]


def test_gpus_come_from_either_vendor_and_the_annotation_overrides_them() -> None:
    assert replica_resources(_service("{limits: {amd.com/gpu: 2}}")).gpus == 2.0
    text = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: s}
spec:
  template:
    metadata:
      annotations: {knray.dev/num-gpus: "0.25"}
    spec:
      containers:
        - resources: {limits: {nvidia.com/gpu: 1}}
"""
    (service,) = parse_manifests(text).resources
    assert isinstance(service, KnativeService)
    # The same figure reaches Ray's num_gpus and the KubeRay render's worker sizing.
    assert replica_resources(service).gpus == 0.25

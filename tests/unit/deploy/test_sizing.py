"""Worker pods for the Services' replicas: packed by resources, bounded by min/max-scale."""

from __future__ import annotations

import pytest

from knray.deploy import UNBOUNDED_MAX_SCALE, WorkerGroupSize, WorkerShape, size_worker_group
from knray.errors import ManifestError
from knray.manifests import KnativeService, parse_manifests

GI = 2**30


def _service(name: str, scale: str, resources: str = "{}") -> KnativeService:
    low, _, high = scale.partition("..")
    annotations = f'autoscaling.knative.dev/min-scale: "{low}"'
    if high:
        annotations += f', autoscaling.knative.dev/max-scale: "{high}"'
    text = f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: {name}}}
spec:
  template:
    metadata:
      annotations: {{{annotations}}}
    spec:
      containers: [{{resources: {resources}}}]
"""
    (service,) = parse_manifests(text).resources
    assert isinstance(service, KnativeService)
    return service


def test_replicas_of_different_sizes_share_pods() -> None:
    services = [
        _service("big", "1..3", "{requests: {cpu: 1500m}}"),
        _service("small", "2..4", "{requests: {cpu: 500m}}"),
    ]
    size = size_worker_group(services, WorkerShape(cpus=2, memory_bytes=4 * GI))
    # min: 1.5 + 0.5 on one pod, the second 0.5 on another; max: each big replica with one
    # small one (3 pods), the last small replica on a fourth.
    assert size == WorkerGroupSize(min_replicas=2, max_replicas=4)


def test_scale_to_zero_services_need_no_pod_at_rest() -> None:
    services = [_service("lazy", "0..4", "{requests: {cpu: 1}}")]
    size = size_worker_group(services, WorkerShape(cpus=2, memory_bytes=4 * GI))
    assert size == WorkerGroupSize(min_replicas=0, max_replicas=2)


def test_unbounded_max_scale_uses_the_cap_and_the_cap_matches_serving() -> None:
    from knray.serving.deployment import UNBOUNDED_MAX_REPLICAS  # noqa: PLC0415

    assert UNBOUNDED_MAX_SCALE == UNBOUNDED_MAX_REPLICAS
    services = [_service("open", "0", "{requests: {cpu: 1}}")]
    shape = WorkerShape(cpus=4, memory_bytes=8 * GI)
    assert size_worker_group(services, shape).max_replicas == 25
    assert size_worker_group(services, shape, unbounded_max_scale=6).max_replicas == 2


def test_every_replica_that_cannot_fit_is_named() -> None:
    services = [
        _service("wide", "1..2", "{requests: {cpu: 3}}"),
        _service("heavy", "1..2", "{requests: {memory: 3Gi}}"),
    ]
    with pytest.raises(ManifestError) as refused:
        size_worker_group(services, WorkerShape(cpus=2, memory_bytes=4 * GI))
    assert refused.value.paths == [
        "spec.template.spec.containers[0].resources.requests.cpu",
        "spec.template.spec.containers[0].resources.requests.memory",
    ]
    assert "Service/default/wide" in str(refused.value)

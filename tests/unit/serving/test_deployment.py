"""The pure parts of deployment: names, CPUs, Serve's autoscaling fields and KPA params."""

from __future__ import annotations

import pytest

from knray.errors import ManifestError
from knray.manifests import parse_manifests
from knray.manifests.service import KnativeService
from knray.serving import app_name, autoscaling_config, kpa_params
from knray.serving.deployment import num_cpus, num_gpus, ray_actor_options


def _service(annotations: str = "", resources: str = "", concurrency: str = "") -> KnativeService:
    text = f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: hello, namespace: prod}}
spec:
  template:
    metadata:
      annotations: {{{annotations}}}
    spec:
      {concurrency}
      containers: [{{image: "x", {resources}}}]
"""
    (service,) = parse_manifests(text).resources
    assert isinstance(service, KnativeService)
    return service


def test_names_and_cpus() -> None:
    assert app_name(_service()) == "prod.hello"
    assert num_cpus(_service()) == 0.1
    assert num_cpus(_service(resources="resources: {requests: {cpu: 250m}}")) == 0.25
    assert num_cpus(_service(resources="resources: {limits: {cpu: '2'}}")) == 2.0


def test_replicas_reserve_the_gpus_and_memory_the_container_asks_for() -> None:
    assert ray_actor_options(_service()) == {"num_cpus": 0.1}
    resources = "resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {nvidia.com/gpu: '1'}}"
    assert ray_actor_options(_service(resources=resources)) == {
        "num_cpus": 0.5,
        "num_gpus": 1.0,
        "memory": 2**30,
    }


def test_serve_fields_from_annotations() -> None:
    service = _service(
        '"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "4", '
        '"autoscaling.knative.dev/initial-scale": "2"'
    )
    config = autoscaling_config(service.autoscaling)
    assert (config["min_replicas"], config["max_replicas"], config["initial_replicas"]) == (1, 4, 2)
    assert config["upscale_delay_s"] == 0.0
    assert config["metrics_interval_s"] < config["look_back_period_s"]
    unbounded = autoscaling_config(_service().autoscaling)
    assert unbounded["min_replicas"] == 0
    assert unbounded["max_replicas"] >= 1


def test_kpa_params_carry_knative_meaning() -> None:
    service = _service(
        '"autoscaling.knative.dev/target": "10", '
        '"autoscaling.knative.dev/target-utilization-percentage": "50", '
        '"autoscaling.knative.dev/window": "20s", '
        '"autoscaling.knative.dev/panic-threshold-percentage": "300", '
        '"autoscaling.knative.dev/scale-down-delay": "15s", '
        '"autoscaling.knative.dev/scale-to-zero-pod-retention-period": "30s"'
    )
    params = kpa_params(service.autoscaling)
    assert params.target_per_replica == 5.0
    assert (params.window_s, params.panic_window_s) == (20.0, 2.0)
    assert params.panic_threshold == 3.0
    assert (params.scale_down_delay_s, params.retention_s) == (15.0, 30.0)


def test_container_concurrency_caps_the_target() -> None:
    service = _service(concurrency="containerConcurrency: 4")
    assert kpa_params(service.autoscaling).target_per_replica == 4 * 0.7


def test_gpus_from_the_annotation_or_the_gpu_limit() -> None:
    assert ray_actor_options(_service()) == {"num_cpus": 0.1}
    by_limit = _service(resources='resources: {limits: {"nvidia.com/gpu": "1"}}')
    assert num_gpus(by_limit) == 1.0
    assert ray_actor_options(by_limit) == {"num_cpus": 0.1, "num_gpus": 1.0}
    amd = _service(resources='resources: {requests: {"amd.com/gpu": 2}}')
    assert num_gpus(amd) == 2.0
    # The annotation gives a share of a GPU and wins over the limit.
    shared = _service(
        '"knray.dev/num-gpus": "0.25"', resources='resources: {limits: {"nvidia.com/gpu": "1"}}'
    )
    assert ray_actor_options(shared) == {"num_cpus": 0.1, "num_gpus": 0.25}
    assert num_gpus(_service('"knray.dev/num-gpus": "0"')) == 0.0


def test_bad_gpu_quantities_are_rejected_with_their_path() -> None:
    with pytest.raises(ManifestError) as bad_annotation:
        _service('"knray.dev/num-gpus": "-1"')
    assert "spec.template.metadata.annotations[knray.dev/num-gpus]" in str(bad_annotation.value)
    with pytest.raises(ManifestError) as bad_limit:
        _service(resources='resources: {limits: {"nvidia.com/gpu": "500m"}}')
    message = str(bad_limit.value)
    assert "spec.template.spec.containers[0].resources.limits" in message
    assert "whole number of GPUs" in message

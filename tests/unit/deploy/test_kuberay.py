"""`knray kuberay render` and kuberay/: valid against the KubeRay v1 CRDs and the Kubernetes
core schemas, up to date with a fresh render, and bad input refused with the field path."""

from __future__ import annotations

import copy
import shlex
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from knray.cli.main import main
from knray.deploy import (
    APP_IMPORT_PATH,
    MANIFESTS_DIR,
    ManifestFile,
    RenderKind,
    RenderOptions,
    render,
)
from knray.errors import ManifestError
from knray.manifests import parse_manifests
from knray.sources.kafka_security import SecretResolver
from tests.support.kuberay_schemas import (
    as_pod,
    core_errors,
    crd_errors,
    load_documents,
    pod_templates,
)

REPO = Path(__file__).resolve().parents[3]
RENDERED = sorted((REPO / "kuberay").glob("*.yaml"))

SASL_SOURCE = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: shop}
---
apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata: {name: orders, namespace: shop}
spec:
  bootstrapServers: [kafka.shop:9093]
  topics: [orders]
  net:
    sasl:
      enable: true
      user: {secretKeyRef: {name: kafka-creds, key: user}}
      password: {secretKeyRef: {name: kafka-creds, key: password}}
      type: {secretKeyRef: {name: kafka-creds, key: sasl.mechanism, optional: true}}
    tls:
      enable: true
      caCert: {secretKeyRef: {name: kafka-ca, key: ca.crt}}
  sink:
    ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: scorer, namespace: shop}
spec:
  template:
    metadata:
      annotations:
        knray.dev/handler: shop.handlers:score
        autoscaling.knative.dev/min-scale: "1"
        autoscaling.knative.dev/max-scale: "10"
    spec:
      containers:
        - resources:
            requests: {cpu: 500m, memory: 512Mi}
"""


def _render(text: str, kind: RenderKind, **options: Any) -> list[dict[str, Any]]:
    resources = parse_manifests(text).resources
    settings = RenderOptions(kind=kind, name="shop", namespace="shop", **options)
    return render(resources, [ManifestFile("app.yaml", text)], settings)


def _check_all(documents: list[dict[str, Any]]) -> None:
    for document in documents:
        if document["apiVersion"] == "ray.io/v1":
            assert crd_errors(document) == [], document["kind"]
            for group, template in pod_templates(document):
                assert core_errors(as_pod(template, f"pod-{group}")) == [], group
        else:
            assert core_errors(document) == [], document["kind"]


# --- kuberay/ ------------------------------------------------------------------------------


def test_kuberay_folder_holds_a_render_of_each_kind() -> None:
    kinds = {d["kind"] for path in RENDERED for d in load_documents(path)}
    assert kinds == {"RayService", "RayJob", "RayCluster", "ConfigMap"}


@pytest.mark.parametrize("path", RENDERED, ids=lambda p: p.name)
def test_kuberay_file_validates_against_the_crds_and_core_schemas(path: Path) -> None:
    _check_all(load_documents(path))


@pytest.mark.parametrize("path", RENDERED, ids=lambda p: p.name)
def test_kuberay_file_is_what_a_fresh_render_writes(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = path.read_text().splitlines()[0]
    prefix = "# Rendered by: knray kuberay render "
    assert first.startswith(prefix), f"{path.name} has no 'Rendered by' header"
    output = tmp_path / path.name
    monkeypatch.chdir(REPO)
    argv = ["kuberay", "render", *shlex.split(first[len(prefix) :]), "-o", str(output)]
    assert main(argv) == 0
    assert output.read_text() == path.read_text(), (
        f"kuberay/{path.name} is stale: run `{first[2:]} -o kuberay/{path.name}`"
    )


# --- the validator itself can fail --------------------------------------------------------


def test_crd_check_rejects_unknown_fields_and_wrong_types() -> None:
    (document,) = load_documents(REPO / "kuberay/live-chat-rayservice.yaml")
    broken = copy.deepcopy(document)
    broken["spec"]["bogus"] = True
    broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = "many"
    errors = crd_errors(broken)
    assert any(e.startswith("spec:") and "bogus" in e for e in errors), errors
    assert any("maxReplicas" in e for e in errors), errors


def test_core_check_rejects_a_bad_secret_reference() -> None:
    (_, template), *_ = pod_templates(_render(SASL_SOURCE, RenderKind.RAYCLUSTER)[1])
    pod = as_pod(template, "head")
    pod["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["key"] = 7
    assert core_errors(pod) != []


# --- what a render says --------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(RenderKind))
def test_kafka_credentials_are_secret_references_never_values(kind: RenderKind) -> None:
    documents = _render(SASL_SOURCE, kind)
    _check_all(documents)
    resolver = SecretResolver(env={})
    expected = {
        resolver.env_name("kafka-creds", "user"): {"name": "kafka-creds", "key": "user"},
        resolver.env_name("kafka-creds", "password"): {"name": "kafka-creds", "key": "password"},
        resolver.env_name("kafka-creds", "sasl.mechanism"): {
            "name": "kafka-creds",
            "key": "sasl.mechanism",
            "optional": True,
        },
        resolver.env_name("kafka-ca", "ca.crt"): {"name": "kafka-ca", "key": "ca.crt"},
    }
    cluster = documents[-1]
    for _, template in pod_templates(cluster):
        env = template["spec"]["containers"][0]["env"]
        assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env} == expected
        assert all(set(e) == {"name", "valueFrom"} for e in env)
    assert not any(d["kind"] == "Secret" for d in documents)


def test_a_kafka_brokers_auth_secret_is_referenced_key_by_key() -> None:
    text = textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: kafka-broker-config, namespace: knative-eventing}
        data:
          bootstrap.servers: "kafka:9092"
          auth.secret.ref.name: kafka-auth
        ---
        apiVersion: eventing.knative.dev/v1
        kind: Broker
        metadata:
          name: default
          annotations: {eventing.knative.dev/broker.class: Kafka}
        spec:
          config:
            apiVersion: v1
            kind: ConfigMap
            name: kafka-broker-config
            namespace: knative-eventing
        """)
    cluster = _render(text, RenderKind.RAYCLUSTER)[-1]
    resolver = SecretResolver(env={})
    keys = ("protocol", "sasl.mechanism", "user", "password", "ca.crt", "user.crt", "user.key")
    for _, template in pod_templates(cluster):
        env = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in template["spec"]["containers"][0]["env"]
        }
        # Which keys a Secret has depends on its protocol: only `protocol` is required.
        assert env[resolver.env_name("kafka-auth", "protocol")] == {
            "name": "kafka-auth",
            "key": "protocol",
        }
        for key in keys[1:]:
            assert env[resolver.env_name("kafka-auth", key)] == {
                "name": "kafka-auth",
                "key": key,
                "optional": True,
            }


def test_disabled_sasl_and_tls_reference_no_secret() -> None:
    text = SASL_SOURCE.replace("enable: true", "enable: false")
    cluster = _render(text, RenderKind.RAYCLUSTER)[-1]
    for _, template in pod_templates(cluster):
        assert "env" not in template["spec"]["containers"][0]


def test_manifests_larger_than_a_configmap_are_refused() -> None:
    resources = parse_manifests(SASL_SOURCE).resources
    big = ManifestFile("app.yaml", SASL_SOURCE + "#" * 1024 * 1024)
    with pytest.raises(ManifestError, match="at most 1 MiB"):
        render(resources, [big], RenderOptions(kind=RenderKind.RAYJOB, name="shop"))


def test_worker_group_is_sized_from_min_and_max_scale_and_replica_resources() -> None:
    (config_map, job) = _render(SASL_SOURCE, RenderKind.RAYJOB, worker_cpu="2", worker_memory="4Gi")
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    (workers,) = cluster["workerGroupSpecs"]
    # 500m CPU per replica: 4 fit on a 2-CPU pod (512Mi x 4 fits in 70% of 4Gi).
    # min-scale 1 -> 1 pod; max-scale 10 -> 3 pods.
    assert (workers["minReplicas"], workers["replicas"], workers["maxReplicas"]) == (1, 1, 3)
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert config_map["data"] == {"app.yaml": SASL_SOURCE}
    assert job["spec"]["entrypoint"] == f"knray run -f {MANIFESTS_DIR} --no-status"
    runtime_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert runtime_env == {"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": "60"}}


def test_memory_bounds_the_replicas_per_pod() -> None:
    text = SASL_SOURCE.replace("memory: 512Mi", "memory: 1Gi")
    (_, cluster) = _render(text, RenderKind.RAYCLUSTER, worker_memory="4Gi")
    # 70% of 4Gi holds two 1Gi replicas: 10 replicas need 5 pods.
    assert cluster["spec"]["workerGroupSpecs"][0]["maxReplicas"] == 5


def test_unbounded_max_scale_counts_the_cap() -> None:
    text = SASL_SOURCE.replace('autoscaling.knative.dev/max-scale: "10"', "x: y")
    (_, cluster) = _render(text, RenderKind.RAYCLUSTER, unbounded_max_scale=8)
    assert cluster["spec"]["workerGroupSpecs"][0]["maxReplicas"] == 2


def test_rayservice_carries_the_manifests_in_serve_config() -> None:
    (service,) = _render(SASL_SOURCE, RenderKind.RAYSERVICE, bootstrap_servers="k:9092")
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    (application,) = config["applications"]
    assert application["import_path"] == APP_IMPORT_PATH
    assert application["args"]["bootstrap_servers"] == "k:9092"
    reloaded = parse_manifests(application["args"]["manifests"]).resources
    assert [r.key for r in reloaded] == [r.key for r in parse_manifests(SASL_SOURCE).resources]


def test_gpu_replicas_need_gpu_workers() -> None:
    text = SASL_SOURCE.replace(
        "requests: {cpu: 500m, memory: 512Mi}",
        'requests: {cpu: "1"}\n            limits: {nvidia.com/gpu: "1"}',
    )
    with pytest.raises(ManifestError) as refused:
        _render(text, RenderKind.RAYCLUSTER)
    assert refused.value.paths == [
        "spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]"
    ]
    (_, cluster) = _render(text, RenderKind.RAYCLUSTER, worker_gpu=1)
    _check_all([cluster])
    worker = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert cluster["spec"]["workerGroupSpecs"][0]["maxReplicas"] == 10


def test_a_replica_larger_than_a_worker_is_refused_with_its_field() -> None:
    text = SASL_SOURCE.replace("cpu: 500m", "cpu: 3")
    with pytest.raises(ManifestError) as refused:
        _render(text, RenderKind.RAYJOB)
    assert refused.value.paths == ["spec.template.spec.containers[0].resources.requests.cpu"]
    assert "--worker-cpu" in str(refused.value)


def test_a_bad_quantity_is_refused_with_its_field() -> None:
    text = SASL_SOURCE.replace("memory: 512Mi", "memory: lots")
    with pytest.raises(ManifestError) as refused:
        _render(text, RenderKind.RAYJOB)
    assert refused.value.paths == ["spec.template.spec.containers[0].resources.requests.memory"]


def test_bad_options_are_refused_by_flag() -> None:
    resources = parse_manifests(SASL_SOURCE).resources
    options = RenderOptions(
        kind=RenderKind.RAYJOB, name="Shop_App", worker_memory="4 GB", dispatchers_per_broker=0
    )
    with pytest.raises(ManifestError) as refused:
        render(resources, [ManifestFile("app.yaml", SASL_SOURCE)], options)
    assert refused.value.paths == ["--name", "--worker-memory", "--dispatchers"]


def test_cli_refuses_max_scale_below_min_scale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = tmp_path / "app.yaml"
    app.write_text(
        SASL_SOURCE.replace('min-scale: "1"', 'min-scale: "5"').replace(
            'max-scale: "10"', 'max-scale: "2"'
        )
    )
    code = main(["kuberay", "render", "-f", str(app), "--kind", "rayservice"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert "annotations[autoscaling.knative.dev/min-scale]" in captured.err
    assert "min-scale 5 exceeds max-scale 2" in captured.err


def test_cli_writes_the_manifests_it_was_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "my-app"
    (folder / "sub").mkdir(parents=True)
    (folder / "app.yaml").write_text(SASL_SOURCE)
    (folder / "sub" / "more.yml").write_text(
        textwrap.dedent(
            """
            apiVersion: eventing.knative.dev/v1
            kind: Broker
            metadata: {name: other, namespace: shop}
            """
        )
    )
    assert main(["kuberay", "render", "-f", str(folder), "--kind", "raycluster"]) == 0
    config_map, cluster = yaml.safe_load_all(capsys.readouterr().out)
    assert set(config_map["data"]) == {"app.yaml", "sub.more.yml"}
    assert cluster["metadata"] == {
        "name": "my-app",
        "namespace": "shop",
        "labels": {"app.kubernetes.io/name": "my-app", "app.kubernetes.io/part-of": "knray"},
    }

"""Loading Knative manifests: every shape knray reads, and every way one can be wrong."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest

from knray.errors import ManifestError, ManifestWarning
from knray.manifests import (
    BackoffPolicy,
    Broker,
    InitialOffset,
    KafkaSource,
    KnativeService,
    Ordering,
    PingSource,
    Trigger,
    load_manifests,
    parse_manifests,
)

REPO = Path(__file__).resolve().parents[3]


def _yaml(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def _error_paths(text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifests(_yaml(text))
    return caught.value.paths


TRIGGER_HEAD = """
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: t
spec:
  broker: default
  subscriber:
    uri: http://127.0.0.1:8080/
"""


def test_article_example_loads_with_a_warning_per_unimplemented_annotation() -> None:
    loaded = parse_manifests(REPO / "configs" / "article")
    by_kind = {type(r).__name__: r for r in loaded.resources}
    assert set(by_kind) == {"KnativeService", "KafkaSourceV1Alpha1"}
    source = by_kind["KafkaSourceV1Alpha1"]
    assert isinstance(source, KafkaSource)
    assert source.spec.bootstrap_servers == [
        "192.168.7.113:9092",
        "192.168.7.110:9092",
        "192.168.7.108:9092",
    ]
    assert source.spec.topics == ["demo"]
    assert source.consumer_group == "demo-consumer"
    assert source.spec.sink.uri == "http://101.200.177.84"
    warned = " ".join(str(w) for w in loaded.warnings)
    for annotation in (
        "networking.knative.dev/flow-controller.class",
        "networking.knative.dev/ingress.class",
        "autoscaling.knative.dev/class",
        "autoscaling.knative.dev/pod-buffer-size",
        "autoscaling.knative.dev/gc-time",
        "k8s.aliyun.com/domain",
        "k8s.aliyun.com/retry-count",
        "k8s.aliyun.com/retry-interval",
        "k8s.aliyun.com/req-timeout",
    ):
        assert annotation in warned, annotation
    assert "xpa.autoscaling.knative.dev" in warned
    service = by_kind["KnativeService"]
    assert isinstance(service, KnativeService)
    assert (service.autoscaling.min_scale, service.autoscaling.max_scale) == (1, 100)


def test_every_config_file_loads() -> None:
    files = sorted((REPO / "configs").rglob("*.yaml"))
    assert files, "configs/ holds no manifests"
    for file in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ManifestWarning)
            assert load_manifests(file), file


def test_live_chat_scenario_has_the_promised_pieces() -> None:
    loaded = parse_manifests(REPO / "configs" / "live-chat")
    brokers = loaded.of_type(Broker)
    triggers = [r for r in loaded.resources if isinstance(r, Trigger)]
    services = [r for r in loaded.resources if isinstance(r, KnativeService)]
    assert len(brokers) == 1
    broker = brokers[0]
    assert isinstance(broker, Broker)
    assert broker.spec.delivery is not None
    assert broker.spec.delivery.dead_letter_sink is not None
    dialects = {d for t in triggers for f in t.spec.filters for d in f.dialects()}
    assert {"exact", "cesql", "cel"} <= dialects
    assert any(t.cel_filter for t in triggers)
    assert {s.name for s in services} >= {"moderation", "sentiment"}
    assert any(s.autoscaling.min_scale == 0 for s in services)
    assert not loaded.warnings


def test_bad_trigger_names_every_bad_field_path() -> None:
    paths = _error_paths(
        TRIGGER_HEAD
        + """
  unknownField: 1
  filter:
    attributes:
      Type: chat.message
  filters:
    - exact:
        type: ""
    - cesql: "type LIKE"
"""
    )
    assert "spec.unknownField" in paths
    assert "spec.filters[0].exact.type" in paths
    assert "spec.filters[1].cesql" in paths
    assert any(p.startswith("spec.filter.attributes.Type") for p in paths)


def test_problem_messages_carry_the_document_location(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(_yaml(TRIGGER_HEAD + "  bogus: 1\n"))
    with pytest.raises(ManifestError) as caught:
        parse_manifests(file)
    message = str(caught.value)
    assert "bad.yaml#1 Trigger/t" in message
    assert "spec.bogus: unknown field" in message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("filters", "path"),
    [
        ("- prefix: {type: a, source: b}", "spec.filters[0].prefix"),
        ("- exact: {type: a}\n    suffix: {source: b}", "spec.filters[0]"),
        ("- {}", "spec.filters[0]"),
        ("- all: []", "spec.filters[0].all"),
        ('- not: {suffix: {"9lives": x}}', "spec.filters[0].not.suffix.9lives"),
        ("- any:\n      - exact: {type: ''}", "spec.filters[0].any[0].exact.type"),
        ('- cesql: "nosuchfunction(type)"', "spec.filters[0].cesql"),
        ('- cel: "event.type ==="', "spec.filters[0].cel"),
        ("- cesql: ''", "spec.filters[0].cesql"),
    ],
)
def test_invalid_filters_are_refused_with_their_path(filters: str, path: str) -> None:
    text = TRIGGER_HEAD + "  filters:\n    " + filters.replace("\n", "\n  ") + "\n"
    assert path in " ".join(_error_paths(text))


def test_trigger_annotations_are_checked() -> None:
    head = TRIGGER_HEAD.replace(
        "  name: t\n",
        "  name: t\n  annotations:\n"
        "    knray.dev/cel-filtre: x\n"
        "    knray.dev/cel-filter: 'event.type =='\n"
        "    kafka.eventing.knative.dev/delivery.order: sorted\n",
    )
    paths = _error_paths(head)
    assert "metadata.annotations[knray.dev/cel-filtre]" in paths
    assert "metadata.annotations[knray.dev/cel-filter]" in paths
    assert "metadata.annotations[kafka.eventing.knative.dev/delivery.order]" in paths


def test_delivery_spec_durations_and_policy() -> None:
    loaded = parse_manifests(
        _yaml(
            TRIGGER_HEAD
            + """
  delivery:
    retry: 4
    backoffPolicy: exponential
    backoffDelay: PT0.5S
    timeout: PT2S
    retryAfterMax: PT1M
    deadLetterSink:
      uri: http://127.0.0.1:9999/dead
"""
        )
    )
    trigger = loaded.resources[0]
    assert isinstance(trigger, Trigger)
    delivery = trigger.spec.delivery
    assert delivery is not None
    assert delivery.retry == 4
    assert delivery.backoff_policy is BackoffPolicy.EXPONENTIAL
    assert (delivery.backoff_delay_s, delivery.timeout_s, delivery.retry_after_max_s) == (
        0.5,
        2.0,
        60.0,
    )
    paths = _error_paths(
        TRIGGER_HEAD
        + """
  delivery:
    retry: -1
    backoffPolicy: quadratic
    backoffDelay: 5s
    deadLetterSink:
      uri: /relative
"""
    )
    assert set(paths) >= {
        "spec.delivery.retry",
        "spec.delivery.backoffPolicy",
        "spec.delivery.backoffDelay",
        "spec.delivery.deadLetterSink",
    }


SERVICE = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: svc
spec:
  template:
    metadata:
      annotations:
{annotations}
    spec:
      containerConcurrency: {cc}
"""


def _service(annotations: dict[str, str], cc: int = 0) -> str:
    lines = "\n".join(f'        {k}: "{v}"' for k, v in annotations.items()) or "        {}"
    return SERVICE.format(annotations=lines, cc=cc)


@pytest.mark.parametrize("spelling", ["kebab", "camel"])
def test_autoscaling_annotations_in_both_spellings(spelling: str) -> None:
    names = {
        "kebab": ("min-scale", "max-scale", "initial-scale", "scale-down-delay"),
        "camel": ("minScale", "maxScale", "initialScale", "scaleDownDelay"),
    }[spelling]
    values = ("2", "9", "3", "1m30s")
    prefix = "autoscaling.knative.dev/"
    annotations = {prefix + n: v for n, v in zip(names, values, strict=True)}
    annotations[prefix + "target"] = "25"
    annotations[prefix + "target-utilization-percentage"] = "80"
    (service,) = parse_manifests(_yaml(_service(annotations))).resources
    assert isinstance(service, KnativeService)
    scaling = service.autoscaling
    assert (scaling.min_scale, scaling.max_scale, scaling.initial_scale) == (2, 9, 3)
    assert scaling.scale_down_delay_s == 90.0
    assert scaling.target_events_per_replica == pytest.approx(20.0)


def test_autoscaling_defaults_follow_knative() -> None:
    (service,) = parse_manifests(_yaml(_service({}))).resources
    assert isinstance(service, KnativeService)
    scaling = service.autoscaling
    assert scaling.target == 100
    assert scaling.target_utilization_percentage == 70
    assert scaling.min_scale == 0
    assert scaling.window_s == 60
    (limited,) = parse_manifests(_yaml(_service({}, cc=10))).resources
    assert isinstance(limited, KnativeService)
    assert limited.autoscaling.target == 10


@pytest.mark.parametrize(
    ("annotations", "bad_key"),
    [
        ({"min-scale": "5", "max-scale": "2"}, "min-scale"),
        ({"min-scale": "1", "minScale": "1"}, "minScale"),
        ({"max-scale": "-1"}, "max-scale"),
        ({"target": "0"}, "target"),
        ({"target-utilization-percentage": "150"}, "target-utilization-percentage"),
        ({"window": "2s"}, "window"),
        ({"window": "soon"}, "window"),
        ({"panic-threshold-percentage": "100"}, "panic-threshold-percentage"),
        ({"scale-down-delay": "2h"}, "scale-down-delay"),
    ],
)
def test_invalid_autoscaling_annotations(annotations: dict[str, str], bad_key: str) -> None:
    prefix = "autoscaling.knative.dev/"
    text = _service({prefix + k: v for k, v in annotations.items()})
    paths = _error_paths(text)
    assert f"spec.template.metadata.annotations[{prefix}{bad_key}]" in paths


def test_autoscaling_annotation_on_the_service_itself_is_refused() -> None:
    text = _service({}).replace(
        "  name: svc\n", '  name: svc\n  annotations:\n    autoscaling.knative.dev/min-scale: "1"\n'
    )
    assert "metadata.annotations[autoscaling.knative.dev/min-scale]" in _error_paths(text)


def test_service_fields() -> None:
    paths = _error_paths(
        """
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: svc
  annotations:
    knray.dev/handler: not a handler
spec:
  template:
    spec:
      containerConcurrency: -1
      timeoutSeconds: 6000
      containers:
        - image: x
          imagePullPolicy: Always
          resources: {limits: {cpu: "1"}}
          colour: blue
  traffic:
    - latestRevision: true
      percent: 50
"""
    )
    assert set(paths) >= {
        "metadata.annotations[knray.dev/handler]",
        "spec.template.spec.containerConcurrency",
        "spec.template.spec.timeoutSeconds",
        "spec.template.spec.containers[0].colour",
        "spec.traffic",
    }


KAFKA = """
apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata:
  name: ks
spec:
  bootstrapServers: [127.0.0.1:9092]
  topics: [a, b]
  sink:
    ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}
"""


def test_kafka_source_defaults_and_fields() -> None:
    (source,) = parse_manifests(_yaml(KAFKA)).resources
    assert isinstance(source, KafkaSource)
    assert source.spec.consumers == 1
    assert source.spec.initial_offset is InitialOffset.LATEST
    assert source.spec.ordering is Ordering.ORDERED
    assert source.consumer_group == "knray.default.ks"
    full = KAFKA.replace("v1beta1", "v1") + (
        "  consumerGroup: g\n"
        "  consumers: 3\n"
        "  initialOffset: earliest\n"
        "  ordering: unordered\n"
        "  ceOverrides:\n"
        "    extensions: {tenant: acme}\n"
        "  net:\n"
        "    sasl:\n"
        "      enable: true\n"
        "      type: {secretKeyRef: {name: kafka-auth, key: mechanism}}\n"
        "      user: {secretKeyRef: {name: kafka-auth, key: user}}\n"
        "      password: {secretKeyRef: {name: kafka-auth, key: password}}\n"
        "    tls:\n"
        "      enable: true\n"
        "      caCert: {secretKeyRef: {name: kafka-tls, key: ca.crt}}\n"
        "  delivery:\n"
        "    retry: 2\n"
    )
    (source,) = parse_manifests(full).resources
    assert isinstance(source, KafkaSource)
    assert source.spec.consumers == 3
    assert source.spec.ordering is Ordering.UNORDERED
    assert source.spec.ce_overrides is not None
    assert source.spec.ce_overrides.extensions == {"tenant": "acme"}
    sasl = source.spec.net.sasl
    assert sasl.enable
    assert sasl.password is not None
    assert sasl.password.secret_key_ref is not None
    assert sasl.password.secret_key_ref.key == "password"


def test_kafka_source_errors() -> None:
    text = (
        KAFKA.replace("[127.0.0.1:9092]", "127.0.0.1:9092").replace("topics: [a, b]", "topics: []")
        + "  consumers: 0\n  initialOffset: newest\n  ceOverrides: {extensions: {type: x}}\n"
    )
    paths = _error_paths(text)
    assert set(paths) >= {
        "spec.bootstrapServers",
        "spec.topics",
        "spec.consumers",
        "spec.initialOffset",
        "spec.ceOverrides.extensions",
    }


PING = """
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: tick
spec:
  schedule: "{schedule}"
  sink:
    uri: http://127.0.0.1:8080
"""


def test_ping_source() -> None:
    text = PING.format(schedule="*/1 * * * *") + (
        "  timezone: Europe/Paris\n  contentType: application/json\n  data: '{\"a\": 1}'\n"
    )
    (ping,) = parse_manifests(_yaml(text)).resources
    assert isinstance(ping, PingSource)
    assert ping.spec.timezone == "Europe/Paris"
    assert ping.spec.data == '{"a": 1}'
    paths = _error_paths(
        PING.format(schedule="every minute")
        + "  timezone: Mars/Olympus\n  data: x\n  dataBase64: '!!'\n"
    )
    assert set(paths) >= {"spec.schedule", "spec.timezone", "spec.dataBase64"}
    both = PING.format(schedule="0 * * * *") + "  data: x\n  dataBase64: eA==\n"
    assert "spec" in _error_paths(both)


def test_unknown_kind_duplicate_names_and_bad_yaml(tmp_path: Path) -> None:
    assert "kind" in _error_paths("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n")
    twice = _yaml(TRIGGER_HEAD) + "---\n" + _yaml(TRIGGER_HEAD)
    assert "metadata.name" in _error_paths(twice)
    with pytest.raises(ManifestError, match="invalid YAML"):
        parse_manifests("a: [unclosed\n")
    with pytest.raises(ManifestError, match=r"no \.yaml or \.yml files"):
        parse_manifests(tmp_path)
    with pytest.raises(ManifestError, match="no such file"):
        parse_manifests(tmp_path / "missing.yaml")


def test_destination_needs_ref_or_absolute_uri() -> None:
    assert "spec.subscriber" in _error_paths(
        TRIGGER_HEAD.replace("uri: http://127.0.0.1:8080/", "{}")
    )
    relative = TRIGGER_HEAD.replace("http://127.0.0.1:8080/", "/path")
    assert "spec.subscriber" in _error_paths(relative)


def test_load_manifests_emits_warnings_and_accepts_text() -> None:
    with pytest.warns(ManifestWarning, match="networking.knative.dev/ingress.class"):
        resources = load_manifests(
            _yaml(
                TRIGGER_HEAD.replace(
                    "  name: t\n",
                    "  name: t\n  annotations:\n    networking.knative.dev/ingress.class: x\n",
                )
            )
        )
    assert [r.key for r in resources] == ["Trigger/default/t"]


def test_models_are_frozen_and_accept_python_field_names() -> None:
    trigger = Trigger.model_validate(
        {
            "api_version": "eventing.knative.dev/v1",
            "kind": "Trigger",
            "metadata": {"name": "t"},
            "spec": {"broker": "default", "subscriber": {"uri": "http://127.0.0.1/"}},
        }
    )
    with pytest.raises(ValueError, match="frozen"):
        trigger.spec.broker = "other"  # type: ignore[misc]


def test_a_mounted_configmap_folder_loads_each_file_once(tmp_path: Path) -> None:
    # The layout of a Kubernetes ConfigMap volume: the files live in a timestamped hidden
    # folder, `..data` links to it, and each key is a symlink through `..data`.
    mount = tmp_path / "manifests"
    data = mount / "..2026_11_26_18_00_00.000000001"
    data.mkdir(parents=True)
    (data / "broker.yaml").write_text(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"
    )
    (mount / "..data").symlink_to(data.name)
    (mount / "broker.yaml").symlink_to("..data/broker.yaml")
    loaded = parse_manifests(mount)
    assert [r.key for r in loaded.resources] == ["Broker/default/default"]

"""The Kafka Broker class: its config from a ConfigMap, topic and group names."""

from __future__ import annotations

import warnings

import pytest

from knray.broker.http_ingress import broker_from_path
from knray.broker.kafka_class import (
    KafkaBrokerConfig,
    broker_topic,
    kafka_broker_config_warnings,
    kafka_broker_configs,
    trigger_group,
    trigger_source,
)
from knray.errors import ManifestError, ManifestWarning
from knray.manifests import Broker, KafkaSource, Trigger, load_manifests

BROKER = """\
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: orders
  namespace: shop
  annotations: {{eventing.knative.dev/broker.class: {cls}}}
{spec}---
"""
CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: kafka-broker-config, namespace: knative-eventing}}
data:
{data}---
"""
SPEC = """\
spec:
  config: {apiVersion: v1, kind: ConfigMap, name: kafka-broker-config, namespace: knative-eventing}
"""
TRIGGER = """\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: audit
  namespace: shop
  annotations: {kafka.eventing.knative.dev/delivery.order: ordered}
spec:
  broker: orders
  subscriber: {uri: "http://127.0.0.1:9/"}
"""


def configs(text: str, bootstrap: str | None = None) -> dict[str, KafkaBrokerConfig]:
    return kafka_broker_configs(load_manifests(text), bootstrap)


def test_config_comes_from_the_configmap_the_broker_names() -> None:
    data = (
        '  bootstrap.servers: "k1:9092, k2:9092"\n'
        '  default.topic.partitions: "3"\n'
        '  default.topic.replication.factor: "2"\n'
    )
    found = configs(BROKER.format(cls="Kafka", spec=SPEC) + CONFIG.format(data=data))
    assert found == {
        "shop/orders": KafkaBrokerConfig(
            ("k1:9092", "k2:9092"),
            "knative-broker-shop-orders",
            3,
            2,
            config_map="knative-eventing/kafka-broker-config",
        )
    }


def test_topic_configs_and_the_auth_secret_are_read_as_knative_reads_them() -> None:
    data = (
        '  bootstrap.servers: "k1:9092"\n'
        '  default.topic.config.retention.ms: "3600000"\n'
        '  default.topic.config.cleanup.policy: "delete"\n'
        "  auth.secret.ref.name: kafka-auth\n"
    )
    text = BROKER.format(cls="Kafka", spec=SPEC) + CONFIG.format(data=data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ManifestWarning)  # every key is known: no warning
        config = configs(text)["shop/orders"]
    assert config.topic_configs == (("cleanup.policy", "delete"), ("retention.ms", "3600000"))
    assert config.auth_secret == "kafka-auth"
    assert kafka_broker_config_warnings(load_manifests(text)) == []
    empty = CONFIG.format(data='  bootstrap.servers: "k1:9092"\n  auth.secret.ref.name: ""\n')
    with pytest.raises(ManifestError, match=r"data: auth.secret.ref.name: empty"):
        configs(BROKER.format(cls="Kafka", spec=SPEC) + empty)


def test_every_key_knray_does_not_read_is_a_warning_naming_it() -> None:
    data = (
        '  bootstrap.servers: "k1:9092"\n'
        "  auth.secret.ref.namespace: other\n"
        '  default.topic.replicas: "3"\n'
    )
    second_broker = BROKER.format(cls="Kafka", spec=SPEC).replace("name: orders", "name: refunds")
    text = BROKER.format(cls="Kafka", spec=SPEC) + second_broker + CONFIG.format(data=data)
    found = kafka_broker_config_warnings(load_manifests(text))
    # Once per ConfigMap, whatever the number of Brokers naming it.
    assert [str(problem) for problem in found] == [
        "ConfigMap/knative-eventing/kafka-broker-config: data[auth.secret.ref.namespace]: "
        "ignored for a Broker, as in Knative: its Secret is read from the ConfigMap's namespace "
        "(this key is a KafkaChannel's)",
        "ConfigMap/knative-eventing/kafka-broker-config: data[default.topic.replicas]: not a key "
        "of Knative's kafka-broker-config; ignored (knray reads auth.secret.ref.name, "
        "bootstrap.servers, default.topic.partitions, default.topic.replication.factor and "
        "default.topic.config.<name>)",
    ]
    with pytest.warns(ManifestWarning) as caught:
        configs(text)
    assert [str(w.message) for w in caught] == [str(problem) for problem in found]


def test_bootstrap_override_replaces_the_configmap_and_makes_it_optional() -> None:
    data = '  bootstrap.servers: "k1:9092"\n'
    text = BROKER.format(cls="Kafka", spec=SPEC) + CONFIG.format(data=data)
    assert configs(text, "local:1")["shop/orders"].bootstrap_servers == ("local:1",)
    bare = configs(BROKER.format(cls="Kafka", spec=""), "local:1")["shop/orders"]
    assert (bare.partitions, bare.replication_factor) == (10, 1)


def test_in_memory_brokers_have_no_kafka_config() -> None:
    assert configs(BROKER.format(cls="MTChannelBasedBroker", spec="")) == {}


def test_every_config_problem_is_named() -> None:
    with pytest.raises(ManifestError, match=r"spec\.config: .*bootstrap\.servers"):
        configs(BROKER.format(cls="Kafka", spec=""))
    with pytest.raises(ManifestError, match="ConfigMap knative-eventing/kafka-broker-config is"):
        configs(BROKER.format(cls="Kafka", spec=SPEC))
    data = '  default.topic.partitions: "zero"\n  default.topic.replication.factor: "0"\n'
    with pytest.raises(ManifestError) as error:
        configs(BROKER.format(cls="Kafka", spec=SPEC) + CONFIG.format(data=data))
    message = str(error.value)
    assert "bootstrap.servers is required" in message
    assert "default.topic.partitions: 'zero'" in message
    assert "default.topic.replication.factor: '0'" in message
    secret = SPEC.replace("kind: ConfigMap", "kind: Secret")
    with pytest.raises(ManifestError, match="v1 ConfigMap, not v1 Secret"):
        configs(BROKER.format(cls="Kafka", spec=secret))


def test_names_follow_knative_and_a_trigger_reads_the_topic_in_its_own_group() -> None:
    resources = load_manifests(BROKER.format(cls="Kafka", spec="") + TRIGGER)
    broker = next(r for r in resources if isinstance(r, Broker))
    trigger = next(r for r in resources if isinstance(r, Trigger))
    assert broker_topic(broker) == "knative-broker-shop-orders"
    assert trigger_group(trigger) == "knative-trigger-shop-audit"
    config = kafka_broker_configs(resources, "k:1")["shop/orders"]
    source = trigger_source(trigger, config)
    assert isinstance(source, KafkaSource)
    assert source.spec.topics == ["knative-broker-shop-orders"]
    assert source.consumer_group == "knative-trigger-shop-audit"
    assert source.spec.ordering.value == "ordered"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/ns/broker", ("ns", "broker")),
        ("/ns/broker/", ("ns", "broker")),
        ("/ns", None),
        ("/ns/", None),
        ("/ns/broker/extra", None),
        ("/ns/broker//", None),
        ("//broker", None),
        ("/", None),
    ],
)
def test_broker_from_path(path: str, expected: tuple[str, str] | None) -> None:
    assert broker_from_path(path) == expected

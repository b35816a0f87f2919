"""The Kafka Broker class: its config from a ConfigMap, topic and group names."""

from __future__ import annotations

import pytest

from knray.broker.http_ingress import broker_from_path
from knray.broker.kafka_class import (
    KafkaBrokerConfig,
    broker_topic,
    kafka_broker_configs,
    trigger_group,
    trigger_source,
)
from knray.errors import ManifestError
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
        "shop/orders": KafkaBrokerConfig(("k1:9092", "k2:9092"), "knative-broker-shop-orders", 3, 2)
    }


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

"""ConfigMaps load (a Kafka Broker's config), and the Kafka Broker class loads without warning."""

from __future__ import annotations

import pytest

from knray.errors import ManifestError
from knray.manifests import ConfigMap, parse_manifests

KAFKA_BROKER = """\
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  annotations: {eventing.knative.dev/broker.class: Kafka}
spec:
  config: {apiVersion: v1, kind: ConfigMap, name: kafka-broker-config}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kafka-broker-config}
data:
  bootstrap.servers: "127.0.0.1:9092"
"""


def test_configmap_and_kafka_broker_class_load_without_warnings() -> None:
    loaded = parse_manifests(KAFKA_BROKER)
    assert loaded.warnings == ()
    config = next(r for r in loaded.resources if isinstance(r, ConfigMap))
    assert config.data == {"bootstrap.servers": "127.0.0.1:9092"}


def test_configmap_values_must_be_strings() -> None:
    with pytest.raises(ManifestError) as error:
        parse_manifests(KAFKA_BROKER.replace('"127.0.0.1:9092"', "9092"))
    assert error.value.paths == ["data[bootstrap.servers]"]


def test_an_unknown_broker_class_warns_and_names_the_classes() -> None:
    loaded = parse_manifests(KAFKA_BROKER.replace("class: Kafka", "class: Other"))
    [warning] = loaded.warnings
    assert "'Other' is not implemented" in str(warning)
    assert "Kafka, MTChannelBasedBroker" in str(warning)

"""The Kafka Broker class: a Broker whose accepted events live in a Kafka topic.

As knative-extensions/eventing-kafka-broker's Kafka Broker: the Broker annotation
``eventing.knative.dev/broker.class: Kafka``; ``spec.config`` names a ConfigMap (Knative's
``kafka-broker-config``) with ``bootstrap.servers``, ``default.topic.partitions`` and
``default.topic.replication.factor``; the topic is ``knative-broker-<namespace>-<name>``,
created when missing; the ingress appends each event (``acks=all``) before answering 202; each
Trigger is its own consumer group, ``knative-trigger-<namespace>-<name>``, starting at the end
of the topic when the group is new, and delivers to its subscriber only. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from knray.errors import FieldProblem, ManifestError
from knray.manifests import Broker, ConfigMap, KafkaSource, Resource, Trigger
from knray.manifests.trigger import DeliveryOrder

__all__ = [
    "BOOTSTRAP_SERVERS_KEY",
    "KAFKA_BROKER_CLASS",
    "PARTITIONS_KEY",
    "REPLICATION_FACTOR_KEY",
    "KafkaBrokerConfig",
    "broker_topic",
    "is_kafka_broker",
    "kafka_broker_config",
    "kafka_broker_configs",
    "trigger_group",
    "trigger_source",
]

KAFKA_BROKER_CLASS: Final = "Kafka"
BOOTSTRAP_SERVERS_KEY: Final = "bootstrap.servers"
PARTITIONS_KEY: Final = "default.topic.partitions"
REPLICATION_FACTOR_KEY: Final = "default.topic.replication.factor"
# Knative's sample kafka-broker-config has 10 partitions; replication 1 suits one broker.
DEFAULT_PARTITIONS: Final = 10
DEFAULT_REPLICATION_FACTOR: Final = 1


@dataclass(frozen=True)
class KafkaBrokerConfig:
    """Where a Kafka-class Broker keeps its events."""

    bootstrap_servers: tuple[str, ...]
    topic: str
    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = DEFAULT_REPLICATION_FACTOR


def is_kafka_broker(broker: Broker) -> bool:
    """True for a Broker of class ``Kafka``."""
    return broker.broker_class == KAFKA_BROKER_CLASS


def broker_topic(broker: Broker) -> str:
    """The topic of a Kafka-class Broker (Knative's ``knative-broker-<namespace>-<name>``)."""
    return f"knative-broker-{broker.namespace}-{broker.name}"


def trigger_group(trigger: Trigger) -> str:
    """A Trigger's consumer group (Knative's ``knative-trigger-<namespace>-<name>``)."""
    return f"knative-trigger-{trigger.namespace}-{trigger.name}"


def _positive(data: dict[str, str], key: str, default: int, problems: list[str]) -> int:
    raw = data.get(key)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        problems.append(f"{key}: {raw!r} is not a positive integer")
        return default
    return value


def kafka_broker_config(
    broker: Broker, resources: Sequence[Resource], bootstrap_servers: str | None = None
) -> KafkaBrokerConfig:
    """The config of a Kafka-class Broker from the ConfigMap its ``spec.config`` names.

    ``bootstrap_servers`` (``knray run --bootstrap-servers``) replaces the ConfigMap's and
    makes ``spec.config`` optional. Raises ManifestError naming the field at fault.
    """
    data: dict[str, str] = {}
    path = "spec.config"
    ref = broker.spec.config
    if ref is not None:
        namespace = ref.namespace or broker.namespace
        if ref.kind != "ConfigMap" or ref.api_version != "v1":
            raise ManifestError(
                [
                    FieldProblem(
                        path,
                        f"a Kafka Broker's config is a v1 ConfigMap, not {ref.api_version} "
                        f"{ref.kind}",
                        broker.key,
                    )
                ]
            )
        found = next(
            (
                r
                for r in resources
                if isinstance(r, ConfigMap) and r.namespace == namespace and r.name == ref.name
            ),
            None,
        )
        if found is None:
            raise ManifestError(
                [FieldProblem(path, f"ConfigMap {namespace}/{ref.name} is not defined", broker.key)]
            )
        data = found.data
        path = f"ConfigMap {namespace}/{ref.name} data"
    servers = bootstrap_servers or data.get(BOOTSTRAP_SERVERS_KEY, "")
    problems: list[str] = []
    hosts = tuple(s.strip() for s in servers.split(",") if s.strip())
    if not hosts:
        problems.append(
            f"{BOOTSTRAP_SERVERS_KEY} is required (or pass --bootstrap-servers)"
            if ref is not None
            else "a Kafka Broker needs a ConfigMap with "
            f"{BOOTSTRAP_SERVERS_KEY} (or --bootstrap-servers)"
        )
    partitions = _positive(data, PARTITIONS_KEY, DEFAULT_PARTITIONS, problems)
    replication = _positive(data, REPLICATION_FACTOR_KEY, DEFAULT_REPLICATION_FACTOR, problems)
    if problems:
        raise ManifestError([FieldProblem(path, problem, broker.key) for problem in problems])
    return KafkaBrokerConfig(hosts, broker_topic(broker), partitions, replication)


def kafka_broker_configs(
    resources: Sequence[Resource], bootstrap_servers: str | None = None
) -> dict[str, KafkaBrokerConfig]:
    """The config of every Kafka-class Broker of ``resources``, by ``namespace/name``.

    Raises one ManifestError naming every problem.
    """
    configs: dict[str, KafkaBrokerConfig] = {}
    problems: list[FieldProblem] = []
    for broker in resources:
        if isinstance(broker, Broker) and is_kafka_broker(broker):
            try:
                configs[f"{broker.namespace}/{broker.name}"] = kafka_broker_config(
                    broker, resources, bootstrap_servers
                )
            except ManifestError as error:
                problems.extend(error.problems)
    if problems:
        raise ManifestError(problems)
    return configs


def trigger_source(trigger: Trigger, config: KafkaBrokerConfig) -> KafkaSource:
    """A KafkaSource reading a Kafka-class Broker's topic in the Trigger's consumer group.

    Knative's Kafka Broker delivers unordered unless the Trigger asks for ``ordered``.
    """
    ordered = trigger.delivery_order is DeliveryOrder.ORDERED
    return KafkaSource.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1beta1",
            "kind": "KafkaSource",
            "metadata": {"name": trigger.name, "namespace": trigger.namespace},
            "spec": {
                "bootstrapServers": list(config.bootstrap_servers),
                "topics": [config.topic],
                "consumerGroup": trigger_group(trigger),
                "initialOffset": "latest",
                "ordering": "ordered" if ordered else "unordered",
                "sink": {
                    "ref": {
                        "apiVersion": "eventing.knative.dev/v1",
                        "kind": "Broker",
                        "name": trigger.spec.broker,
                    }
                },
            },
        }
    )

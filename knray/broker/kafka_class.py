"""The Kafka Broker class: a Broker whose accepted events live in a Kafka topic.

As knative-extensions/eventing-kafka-broker's Kafka Broker: the Broker annotation
``eventing.knative.dev/broker.class: Kafka``; ``spec.config`` names a ConfigMap (Knative's
``kafka-broker-config``) with ``bootstrap.servers``, ``default.topic.partitions`` and
``default.topic.replication.factor``; the topic is ``knative-broker-<namespace>-<name>``,
created when missing; the ingress appends each event (``acks=all``) before answering 202; each
Trigger is its own consumer group, ``knative-trigger-<namespace>-<name>``, starting at the end
of the topic when the group is new, and delivers to its subscriber only. Pure: no I/O.

The ConfigMap keys are Knative's (``control-plane/pkg/kafka/topic.go``,
``control-plane/pkg/security/config.go``): ``default.topic.config.<name>`` sets a topic config
of a topic created, ``auth.secret.ref.name`` names the Secret with the Kafka credentials, read
from the ConfigMap's namespace (the Broker reconciler passes ``UseNamespaceInConfigmap:
false``, so ``auth.secret.ref.namespace`` is a KafkaChannel key a Broker ignores). Any other key
is reported as a warning naming it: nothing in the ConfigMap is ignored silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from knray.errors import FieldProblem, ManifestError, ManifestWarning
from knray.manifests import Broker, ConfigMap, KafkaSource, Resource, Trigger
from knray.manifests.trigger import DeliveryOrder

__all__ = [
    "AUTH_SECRET_KEY",
    "AUTH_SECRET_KEYS",
    "BOOTSTRAP_SERVERS_KEY",
    "KAFKA_BROKER_CLASS",
    "PARTITIONS_KEY",
    "REPLICATION_FACTOR_KEY",
    "KafkaBrokerConfig",
    "broker_topic",
    "is_kafka_broker",
    "kafka_broker_auth_secrets",
    "kafka_broker_config",
    "kafka_broker_config_warnings",
    "kafka_broker_configs",
    "trigger_group",
    "trigger_source",
]

KAFKA_BROKER_CLASS: Final = "Kafka"
BOOTSTRAP_SERVERS_KEY: Final = "bootstrap.servers"
PARTITIONS_KEY: Final = "default.topic.partitions"
REPLICATION_FACTOR_KEY: Final = "default.topic.replication.factor"
TOPIC_CONFIG_PREFIX: Final = "default.topic.config."
AUTH_SECRET_KEY: Final = "auth.secret.ref.name"
_AUTH_NAMESPACE_KEY: Final = "auth.secret.ref.namespace"
# The keys Knative reads from that Secret (control-plane/pkg/security/secret.go); only
# ``protocol`` is always required.
AUTH_SECRET_KEYS: Final = (
    "protocol",
    "sasl.mechanism",
    "user",
    "password",
    "ca.crt",
    "user.crt",
    "user.key",
    "user.skip",
)
_KNOWN_KEYS: Final = frozenset(
    {BOOTSTRAP_SERVERS_KEY, PARTITIONS_KEY, REPLICATION_FACTOR_KEY, AUTH_SECRET_KEY}
)
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
    # ``default.topic.config.*`` of the ConfigMap, prefix removed, sorted.
    topic_configs: tuple[tuple[str, str], ...] = ()
    # The Secret named by ``auth.secret.ref.name`` (its name only: values are read where the
    # clients run, see knray.sources.kafka_security.broker_secret_security).
    auth_secret: str | None = None
    # ``namespace/name`` of the ConfigMap, for messages.
    config_map: str | None = None


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


def _config_map(broker: Broker, resources: Sequence[Resource]) -> ConfigMap | None:
    """The ConfigMap ``spec.config`` names (None without ``spec.config``)."""
    ref = broker.spec.config
    if ref is None:
        return None
    namespace = ref.namespace or broker.namespace
    if ref.kind != "ConfigMap" or ref.api_version != "v1":
        message = f"a Kafka Broker's config is a v1 ConfigMap, not {ref.api_version} {ref.kind}"
        raise ManifestError([FieldProblem("spec.config", message, broker.key)])
    for resource in resources:
        if (
            isinstance(resource, ConfigMap)
            and resource.namespace == namespace
            and resource.name == ref.name
        ):
            return resource
    message = f"ConfigMap {namespace}/{ref.name} is not defined"
    raise ManifestError([FieldProblem("spec.config", message, broker.key)])


def kafka_broker_config(
    broker: Broker, resources: Sequence[Resource], bootstrap_servers: str | None = None
) -> KafkaBrokerConfig:
    """The config of a Kafka-class Broker from the ConfigMap its ``spec.config`` names.

    ``bootstrap_servers`` (``knray run --bootstrap-servers``) replaces the ConfigMap's and
    makes ``spec.config`` optional. Raises ManifestError naming the field at fault.
    """
    found = _config_map(broker, resources)
    data = found.data if found is not None else {}
    ref = broker.spec.config
    name = f"{found.namespace}/{found.name}" if found is not None else None
    path = f"ConfigMap {name} data" if found is not None else "spec.config"
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
    secret = data.get(AUTH_SECRET_KEY)
    if secret is not None and not secret.strip():
        problems.append(f"{AUTH_SECRET_KEY}: empty (name a Secret, or remove the key)")
    topic_configs = tuple(
        sorted(
            (key.removeprefix(TOPIC_CONFIG_PREFIX), value)
            for key, value in data.items()
            if key.startswith(TOPIC_CONFIG_PREFIX) and key != TOPIC_CONFIG_PREFIX
        )
    )
    if problems:
        raise ManifestError([FieldProblem(path, problem, broker.key) for problem in problems])
    return KafkaBrokerConfig(
        hosts,
        broker_topic(broker),
        partitions,
        replication,
        topic_configs,
        secret.strip() if secret else None,
        name,
    )


def _kafka_config_maps(resources: Sequence[Resource]) -> list[ConfigMap]:
    """The ConfigMaps of the Kafka-class Brokers, each once; broken references skipped
    (kafka_broker_configs reports them)."""
    found: dict[str, ConfigMap] = {}
    for broker in resources:
        if not (isinstance(broker, Broker) and is_kafka_broker(broker)):
            continue
        try:
            config_map = _config_map(broker, resources)
        except ManifestError:
            continue
        if config_map is not None:
            found.setdefault(config_map.key, config_map)
    return list(found.values())


def kafka_broker_auth_secrets(resources: Sequence[Resource]) -> list[str]:
    """The Secrets named by the Kafka-class Brokers' ``auth.secret.ref.name``, sorted."""
    names = {c.data.get(AUTH_SECRET_KEY, "").strip() for c in _kafka_config_maps(resources)}
    return sorted(name for name in names if name)


def kafka_broker_config_warnings(resources: Sequence[Resource]) -> list[FieldProblem]:
    """A warning for every key of a Kafka Broker's ConfigMap that knray does not read
    (once per ConfigMap, however many Brokers name it)."""
    found: list[FieldProblem] = []
    for config_map in _kafka_config_maps(resources):
        for key in sorted(config_map.data):
            message = _unknown_key(key)
            if message is not None:
                found.append(FieldProblem(f"data[{key}]", message, config_map.key))
    return found


def _unknown_key(key: str) -> str | None:
    if key in _KNOWN_KEYS or (key.startswith(TOPIC_CONFIG_PREFIX) and key != TOPIC_CONFIG_PREFIX):
        return None
    if key == _AUTH_NAMESPACE_KEY:
        return (
            "ignored for a Broker, as in Knative: its Secret is read from the ConfigMap's "
            "namespace (this key is a KafkaChannel's)"
        )
    return (
        "not a key of Knative's kafka-broker-config; ignored (knray reads "
        f"{', '.join(sorted(_KNOWN_KEYS))} and {TOPIC_CONFIG_PREFIX}<name>)"
    )


def kafka_broker_configs(
    resources: Sequence[Resource], bootstrap_servers: str | None = None
) -> dict[str, KafkaBrokerConfig]:
    """The config of every Kafka-class Broker of ``resources``, by ``namespace/name``.

    Raises one ManifestError naming every problem; keys of their ConfigMaps that knray does
    not read are reported with ``warnings.warn`` (ManifestWarning).
    """
    for problem in kafka_broker_config_warnings(resources):
        warnings.warn(ManifestWarning(problem), stacklevel=2)
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

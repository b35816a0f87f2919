"""Knative resources as pydantic models, and the YAML loader that checks them."""

from knray.manifests.base import Destination, KReference, ObjectMeta, Resource
from knray.manifests.broker import Broker, BrokerSpec
from knray.manifests.config_map import ConfigMap
from knray.manifests.delivery import BackoffPolicy, DeliverySpec
from knray.manifests.kafka_source import (
    InitialOffset,
    KafkaSource,
    KafkaSourceSpec,
    KafkaSourceV1Alpha1,
    Ordering,
)
from knray.manifests.loader import SOURCE_TYPES, ManifestSet, load_manifests, parse_manifests
from knray.manifests.nats_jetstream_source import NatsJetStreamSource, NatsJetStreamSourceSpec
from knray.manifests.ping_source import PingSource, PingSourceSpec
from knray.manifests.rabbitmq_source import RabbitmqSource, RabbitmqSourceSpec
from knray.manifests.redis_stream_source import RedisStreamSource, RedisStreamSourceSpec
from knray.manifests.rocketmq_source import RocketMQSource, RocketMQSourceSpec
from knray.manifests.scaling import AutoscalingSpec
from knray.manifests.service import KnativeService, ServiceSpec
from knray.manifests.sources import CloudEventOverrides
from knray.manifests.trigger import (
    DeliveryOrder,
    SubscriptionsAPIFilter,
    Trigger,
    TriggerFilter,
    TriggerSpec,
)

__all__ = [
    "SOURCE_TYPES",
    "AutoscalingSpec",
    "BackoffPolicy",
    "Broker",
    "BrokerSpec",
    "CloudEventOverrides",
    "ConfigMap",
    "DeliveryOrder",
    "DeliverySpec",
    "Destination",
    "InitialOffset",
    "KReference",
    "KafkaSource",
    "KafkaSourceSpec",
    "KafkaSourceV1Alpha1",
    "KnativeService",
    "ManifestSet",
    "NatsJetStreamSource",
    "NatsJetStreamSourceSpec",
    "ObjectMeta",
    "Ordering",
    "PingSource",
    "PingSourceSpec",
    "RabbitmqSource",
    "RabbitmqSourceSpec",
    "RedisStreamSource",
    "RedisStreamSourceSpec",
    "Resource",
    "RocketMQSource",
    "RocketMQSourceSpec",
    "ServiceSpec",
    "SubscriptionsAPIFilter",
    "Trigger",
    "TriggerFilter",
    "TriggerSpec",
    "load_manifests",
    "parse_manifests",
]

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
from knray.manifests.loader import ManifestSet, load_manifests, parse_manifests
from knray.manifests.ping_source import PingSource, PingSourceSpec
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
    "ObjectMeta",
    "Ordering",
    "PingSource",
    "PingSourceSpec",
    "Resource",
    "ServiceSpec",
    "SubscriptionsAPIFilter",
    "Trigger",
    "TriggerFilter",
    "TriggerSpec",
    "load_manifests",
    "parse_manifests",
]

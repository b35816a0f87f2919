"""RabbitmqSource (sources.knative.dev/v1alpha1, knative-extensions/eventing-rabbitmq)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field, model_validator

from knray.manifests.base import ManifestModel, NonEmptyStr, Resource
from knray.manifests.delivery import DeliverySpec
from knray.manifests.sources import SourceSpec

__all__ = [
    "QueueType",
    "RabbitmqClusterReference",
    "RabbitmqResourcesConfig",
    "RabbitmqSource",
    "RabbitmqSourceSpec",
]


class QueueType(StrEnum):
    """The type of a queue the source declares."""

    QUORUM = "quorum"
    CLASSIC = "classic"


class LocalObjectReference(ManifestModel):
    """A Secret in the source's namespace, by name."""

    name: NonEmptyStr


class RabbitmqClusterReference(ManifestModel):
    """Where the RabbitMQ server is (messaging-topology-operator ``RabbitmqClusterReference``).

    knray reads ``connectionSecret`` (keys ``uri``, ``username``, ``password``); without
    one, ``name`` is the host, with RabbitMQ's default port and ``guest`` credentials.
    """

    name: str = ""
    namespace: str | None = None
    connection_secret: LocalObjectReference | None = None

    @model_validator(mode="after")
    def _name_or_secret(self) -> RabbitmqClusterReference:
        if not self.name and self.connection_secret is None:
            raise ValueError("expected 'name' or 'connectionSecret'")
        return self


class RabbitmqResourcesConfig(ManifestModel):
    """The queue to consume, and the exchange it is bound to."""

    vhost: str = ""
    queue_name: NonEmptyStr
    queue_type: QueueType = QueueType.QUORUM
    exchange_name: str = ""
    # Prefetch count and number of messages delivered at once (1..1000, eventing-rabbitmq).
    parallelism: int = Field(default=1, ge=1, le=1000)
    predeclared: bool = False

    @model_validator(mode="after")
    def _exchange(self) -> RabbitmqResourcesConfig:
        # rabbitmq_types.go: "Name of the exchange; Required when predeclared is false."
        if not self.predeclared and not self.exchange_name:
            raise ValueError("'exchangeName' is required when 'predeclared' is false")
        return self


class RabbitmqSourceSpec(SourceSpec):
    """``spec`` of a RabbitmqSource."""

    rabbitmq_cluster_reference: RabbitmqClusterReference
    rabbitmq_resources_config: RabbitmqResourcesConfig
    delivery: DeliverySpec | None = None
    service_account_name: str | None = None


class RabbitmqSource(Resource):
    """A RabbitmqSource: messages of a RabbitMQ queue become CloudEvents sent to a sink."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = ("sources.knative.dev/v1alpha1",)
    KIND: ClassVar[str] = "RabbitmqSource"

    spec: RabbitmqSourceSpec

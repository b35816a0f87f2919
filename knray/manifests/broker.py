"""Broker (eventing.knative.dev/v1)."""

from __future__ import annotations

from typing import ClassVar, Final

from pydantic import Field

from knray.manifests.base import KReference, ManifestModel, Resource
from knray.manifests.delivery import DeliverySpec

__all__ = ["BROKER_CLASS_ANNOTATION", "Broker", "BrokerSpec"]

BROKER_CLASS_ANNOTATION: Final = "eventing.knative.dev/broker.class"


class BrokerSpec(ManifestModel):
    """``spec`` of a Broker."""

    config: KReference | None = None
    delivery: DeliverySpec | None = None


class Broker(Resource):
    """A Knative Broker: an event mesh that Triggers subscribe to."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = ("eventing.knative.dev/v1",)
    KIND: ClassVar[str] = "Broker"

    spec: BrokerSpec = Field(default_factory=BrokerSpec)

    @property
    def broker_class(self) -> str | None:
        return self.metadata.annotations.get(BROKER_CLASS_ANNOTATION)

"""NatsJetStreamSource (sources.knray.dev/v1alpha1): a JetStream stream as a source.

Knative has no NATS source; eventing-natss offers only a channel. This kind follows the
shape of Knative's sources (``sink``, ``ceOverrides``, ``delivery``) and of the KafkaSource
(servers, what to read, a durable consumer as the consumer group).
"""

from __future__ import annotations

import re
from typing import ClassVar, Final

from pydantic import Field, field_validator

from knray.manifests.base import NonEmptyStr, Resource
from knray.manifests.delivery import DeliverySpec
from knray.manifests.durations import parse_iso8601_duration_s
from knray.manifests.sources import SourceSpec

__all__ = ["NatsJetStreamSource", "NatsJetStreamSourceSpec"]

# JetStream names: no whitespace, '.', '*', '>' (nats-server server/stream.go, isValidName).
_JETSTREAM_NAME: Final = re.compile(r"[^\s.*>]+")


class NatsJetStreamSourceSpec(SourceSpec):
    """``spec`` of a NatsJetStreamSource."""

    servers: list[NonEmptyStr] = Field(min_length=1)
    stream: NonEmptyStr
    subject: str = ""
    consumer_name: str = ""
    ack_wait: str = "PT30S"
    delivery: DeliverySpec | None = None

    @field_validator("stream", "consumer_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not _JETSTREAM_NAME.fullmatch(value):
            raise ValueError(f"invalid JetStream name {value!r}: no whitespace, '.', '*' or '>'")
        return value

    @field_validator("ack_wait")
    @classmethod
    def _ack_wait(cls, value: str) -> str:
        if parse_iso8601_duration_s(value) <= 0:
            raise ValueError(f"ackWait {value!r} must be positive")
        return value

    @property
    def ack_wait_s(self) -> float:
        return parse_iso8601_duration_s(self.ack_wait)


class NatsJetStreamSource(Resource):
    """A NatsJetStreamSource: messages of a JetStream stream become CloudEvents."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = ("sources.knray.dev/v1alpha1",)
    KIND: ClassVar[str] = "NatsJetStreamSource"

    spec: NatsJetStreamSourceSpec

    @property
    def durable_name(self) -> str:
        """The durable consumer (the group): ``consumerName`` or ``knray-NAMESPACE-NAME``."""
        return self.spec.consumer_name or f"knray-{self.namespace}-{self.name}".replace(".", "-")

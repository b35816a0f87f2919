"""KafkaSource (sources.knative.dev/v1beta1 and v1, and the legacy v1alpha1 shape)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, field_validator

from knray.manifests.base import ManifestModel, NonEmptyStr, Resource
from knray.manifests.delivery import DeliverySpec
from knray.manifests.sources import SecretValueFromSource, SourceSpec

__all__ = [
    "InitialOffset",
    "KafkaNetSpec",
    "KafkaSASLSpec",
    "KafkaSource",
    "KafkaSourceSpec",
    "KafkaSourceV1Alpha1",
    "KafkaTLSSpec",
    "Ordering",
]


class InitialOffset(StrEnum):
    """Where a new consumer group starts reading."""

    EARLIEST = "earliest"
    LATEST = "latest"


class Ordering(StrEnum):
    """Per-partition order (one event at a time) or concurrent delivery."""

    ORDERED = "ordered"
    UNORDERED = "unordered"


class KafkaSASLSpec(ManifestModel):
    """SASL authentication; ``type`` is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."""

    enable: bool = False
    user: SecretValueFromSource | None = None
    password: SecretValueFromSource | None = None
    type: SecretValueFromSource | None = None


class KafkaTLSSpec(ManifestModel):
    """TLS settings; certificates and keys come from Secrets."""

    enable: bool = False
    cert: SecretValueFromSource | None = None
    key: SecretValueFromSource | None = None
    ca_cert: SecretValueFromSource | None = None


class KafkaNetSpec(ManifestModel):
    """Network settings of a Kafka client."""

    sasl: KafkaSASLSpec = Field(default_factory=KafkaSASLSpec)
    tls: KafkaTLSSpec = Field(default_factory=KafkaTLSSpec, alias="tls")


class KafkaSourceSpec(SourceSpec):
    """``spec`` of a KafkaSource (v1beta1 and v1)."""

    bootstrap_servers: list[NonEmptyStr] = Field(min_length=1)
    topics: list[NonEmptyStr] = Field(min_length=1)
    consumer_group: NonEmptyStr | None = None
    consumers: int = Field(default=1, ge=1)
    initial_offset: InitialOffset = InitialOffset.LATEST
    ordering: Ordering = Ordering.ORDERED
    net: KafkaNetSpec = Field(default_factory=KafkaNetSpec)
    delivery: DeliverySpec | None = None


class KafkaSource(Resource):
    """A Knative KafkaSource: Kafka records become CloudEvents sent to a sink."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = (
        "sources.knative.dev/v1beta1",
        "sources.knative.dev/v1",
    )
    KIND: ClassVar[str] = "KafkaSource"

    spec: KafkaSourceSpec

    @property
    def consumer_group(self) -> str:
        """The group name; Knative generates one when unset, knray derives a stable one."""
        return self.spec.consumer_group or f"knray.{self.namespace}.{self.name}"


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class KafkaSourceSpecV1Alpha1(KafkaSourceSpec):
    """The legacy v1alpha1 spec: comma-separated ``bootstrapServers`` and ``topics``."""

    # Legacy pod settings, meaningless on Ray; accepted so old manifests still load.
    service_account_name: str | None = None
    resources: dict[str, Any] | None = None

    _split = field_validator("bootstrap_servers", "topics", mode="before")(_split_commas)

    @field_validator("sink", mode="before")
    @classmethod
    def _bare_reference(cls, sink: Any) -> Any:
        # v1alpha1 allowed a bare object reference as the sink; today it is {ref: ...}.
        if isinstance(sink, dict) and "kind" in sink and not {"ref", "uri"} & sink.keys():
            return {"ref": sink}
        return sink


class KafkaSourceV1Alpha1(KafkaSource):
    """A KafkaSource in the legacy ``sources.knative.dev/v1alpha1`` shape."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = ("sources.knative.dev/v1alpha1",)

    spec: KafkaSourceSpecV1Alpha1

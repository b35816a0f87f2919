"""RedisStreamSource (sources.knative.dev/v1alpha1, knative-extensions/eventing-redis)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from knray.manifests.base import ManifestModel, NonEmptyStr, Resource
from knray.manifests.delivery import DeliverySpec
from knray.manifests.sources import SourceSpec

__all__ = ["RedisConnectionOptions", "RedisStreamSource", "RedisStreamSourceSpec"]


class RedisConnectionOptions(ManifestModel):
    """``dialOptions``: password Secret and TLS."""

    # eventing-redis types it as an object reference; knray reads key ``password`` of the
    # Secret it names.
    password: dict[str, Any] | None = None
    use_tls: bool = Field(default=False, alias="useTLS")
    skip_verify: bool = False
    cert: dict[str, Any] | None = None
    key: dict[str, Any] | None = None
    ca_cert: dict[str, Any] | None = None

    @field_validator("cert", "key", "ca_cert")
    @classmethod
    def _no_client_certificates(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value:
            raise ValueError("client certificates are not supported by knray")
        return value

    @field_validator("password")
    @classmethod
    def _password_secret(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value and not isinstance(value.get("name"), str):
            raise ValueError("expected the 'name' of the Secret holding key 'password'")
        return value or None


class RedisStreamSourceSpec(SourceSpec):
    """``spec`` of a RedisStreamSource."""

    address: NonEmptyStr
    dial_options: RedisConnectionOptions | None = None
    stream: NonEmptyStr
    group: str = ""
    consumers: int = Field(default=1, ge=1)
    delivery: DeliverySpec | None = None


class RedisStreamSource(Resource):
    """A RedisStreamSource: entries of a Redis stream become CloudEvents sent to a sink."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = ("sources.knative.dev/v1alpha1",)
    KIND: ClassVar[str] = "RedisStreamSource"

    spec: RedisStreamSourceSpec

    @property
    def consumer_group(self) -> str:
        """The group; eventing-redis creates one per source when unset, knray names it."""
        return self.spec.group or f"knray.{self.namespace}.{self.name}"

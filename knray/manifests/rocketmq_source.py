"""RocketMQSource: the shape of Apache's ``rocketmq-knative`` source (rocketmq-externals)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, Field, field_validator

from knray.manifests.base import NonEmptyStr, Resource
from knray.manifests.delivery import DeliverySpec
from knray.manifests.sources import SecretValueFromSource, SourceSpec

__all__ = ["RocketMQSource", "RocketMQSourceSpec"]


class RocketMQSourceSpec(SourceSpec):
    """``spec`` of a RocketMQSource (``rocketmqsource_types.go`` and its sample)."""

    topic: NonEmptyStr
    namesrv_addr: NonEmptyStr = Field(validation_alias=AliasChoices("namesrvAddr", "nameServer"))
    group_name: str = Field(default="", validation_alias=AliasChoices("groupName", "group"))
    # A Secret whose value is JSON {"accessKeyId": ..., "accessKeySecret": ...}
    # (rocketmq-knative ``Credentials``).
    access_token: SecretValueFromSource | None = None
    service_account_name: str | None = None
    delivery: DeliverySpec | None = None

    @field_validator("sink", mode="before")
    @classmethod
    def _bare_reference(cls, sink: Any) -> Any:
        # The sample's sink is a bare object reference (v1alpha1 era); today it is {ref: ...}.
        if isinstance(sink, dict) and "kind" in sink and not {"ref", "uri"} & sink.keys():
            return {"ref": sink}
        return sink


class RocketMQSource(Resource):
    """A RocketMQSource: messages of a RocketMQ topic become CloudEvents sent to a sink."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = (
        "sources.eventing.knative.dev/v1alpha1",
        "sources.knative.dev/v1alpha1",
    )
    KIND: ClassVar[str] = "RocketMQSource"

    spec: RocketMQSourceSpec

    @property
    def consumer_group(self) -> str:
        return self.spec.group_name or f"knray-{self.namespace}-{self.name}"

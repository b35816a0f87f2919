"""Trigger (eventing.knative.dev/v1) and its filter specs."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Final

from pydantic import Field, field_validator, model_validator

from knray import cel, cesql
from knray.errors import CELCompileError, CESQLError
from knray.manifests.base import (
    AttributeName,
    Destination,
    ManifestModel,
    NonEmptyStr,
    Resource,
)
from knray.manifests.delivery import DeliverySpec

__all__ = [
    "CEL_FILTER_ANNOTATION",
    "DELIVERY_ORDER_ANNOTATION",
    "DeliveryOrder",
    "SubscriptionsAPIFilter",
    "Trigger",
    "TriggerFilter",
    "TriggerSpec",
]

CEL_FILTER_ANNOTATION: Final = "knray.dev/cel-filter"
DELIVERY_ORDER_ANNOTATION: Final = "kafka.eventing.knative.dev/delivery.order"


class DeliveryOrder(StrEnum):
    """Knative Kafka's delivery order: one event at a time per partition, or concurrent."""

    ORDERED = "ordered"
    UNORDERED = "unordered"


def _single_attribute(value: dict[str, str] | None) -> dict[str, str] | None:
    # trigger_validation.go ValidateSingleAttributeMap: one key-value per exact/prefix/suffix.
    if value is not None and len(value) != 1:
        raise ValueError(f"must hold exactly one attribute: value, found {len(value)}")
    return value


def check_cesql(expression: str) -> str:
    """Reject a CESQL expression that does not parse or calls an unknown function."""
    try:
        cesql.validate(expression)
    except CESQLError as error:
        raise ValueError(f"invalid CESQL expression {expression!r}: {error}") from None
    return expression


def check_cel(expression: str) -> str:
    """Reject a CEL expression that does not compile."""
    try:
        cel.compile_expression(expression)
    except CELCompileError as error:
        raise ValueError(f"invalid CEL expression {expression!r}: {error}") from None
    return expression


class SubscriptionsAPIFilter(ManifestModel):
    """One element of ``spec.filters``: exactly one dialect."""

    exact: dict[AttributeName, NonEmptyStr] | None = None
    prefix: dict[AttributeName, NonEmptyStr] | None = None
    suffix: dict[AttributeName, NonEmptyStr] | None = None
    all: list[SubscriptionsAPIFilter] | None = Field(default=None, min_length=1)
    any: list[SubscriptionsAPIFilter] | None = Field(default=None, min_length=1)
    not_: SubscriptionsAPIFilter | None = Field(default=None, alias="not")
    cesql: NonEmptyStr | None = None
    cel: NonEmptyStr | None = None

    _single = field_validator("exact", "prefix", "suffix")(_single_attribute)
    _cesql = field_validator("cesql")(lambda value: None if value is None else check_cesql(value))
    _cel = field_validator("cel")(lambda value: None if value is None else check_cel(value))

    @model_validator(mode="after")
    def _one_dialect(self) -> SubscriptionsAPIFilter:
        dialects = self.dialects()
        if len(dialects) > 1:
            raise ValueError(
                f"multiple dialects found ({', '.join(dialects)}); a filter can have only one"
            )
        if not dialects:
            raise ValueError(
                "no dialect set: use one of exact, prefix, suffix, all, any, not, cesql, cel"
            )
        return self

    def dialects(self) -> list[str]:
        """Names of the dialects set on this element."""
        names = ("exact", "prefix", "suffix", "all", "any", "not_", "cesql", "cel")
        return [name.rstrip("_") for name in names if getattr(self, name) is not None]


class TriggerFilter(ManifestModel):
    """The legacy ``spec.filter``: exact attribute matches; "" means present and non-empty."""

    attributes: dict[AttributeName, str] = Field(default_factory=dict)


class TriggerSpec(ManifestModel):
    """``spec`` of a Trigger."""

    broker: NonEmptyStr
    filter: TriggerFilter | None = None
    filters: list[SubscriptionsAPIFilter] = Field(default_factory=list)
    subscriber: Destination
    delivery: DeliverySpec | None = None


class Trigger(Resource):
    """A Knative Trigger: which events of a Broker go to which subscriber."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = ("eventing.knative.dev/v1",)
    KIND: ClassVar[str] = "Trigger"

    spec: TriggerSpec

    @property
    def cel_filter(self) -> str | None:
        """The ``knray.dev/cel-filter`` annotation, ANDed with the other filters."""
        return self.metadata.annotations.get(CEL_FILTER_ANNOTATION)

    @property
    def delivery_order(self) -> DeliveryOrder | None:
        value = self.metadata.annotations.get(DELIVERY_ORDER_ANNOTATION)
        return None if value is None else DeliveryOrder(value)

"""DeliverySpec (duck/v1 delivery_types.go): retries, backoff, timeout, dead-letter sink."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from knray.manifests.base import Destination, ManifestModel
from knray.manifests.durations import parse_iso8601_duration_s

__all__ = ["BackoffPolicy", "DeliverySpec"]


class BackoffPolicy(StrEnum):
    """How the delay grows between retries."""

    LINEAR = "linear"
    EXPONENTIAL = "exponential"


def _check_duration(value: str | None) -> str | None:
    if value is None:
        return None
    if parse_iso8601_duration_s(value) < 0:
        raise ValueError(f"duration {value!r} must not be negative")
    return value


class DeliverySpec(ManifestModel):
    """How events are delivered to a subscriber; a Trigger's overrides its Broker's."""

    dead_letter_sink: Destination | None = None
    retry: int | None = Field(default=None, ge=0)
    backoff_policy: BackoffPolicy | None = None
    backoff_delay: str | None = None
    timeout: str | None = None
    retry_after_max: str | None = None
    format: str | None = Field(default=None, pattern="^(json|binary)$")

    _durations = field_validator("backoff_delay", "timeout", "retry_after_max")(_check_duration)

    @property
    def backoff_delay_s(self) -> float | None:
        return None if self.backoff_delay is None else parse_iso8601_duration_s(self.backoff_delay)

    @property
    def timeout_s(self) -> float | None:
        return None if self.timeout is None else parse_iso8601_duration_s(self.timeout)

    @property
    def retry_after_max_s(self) -> float | None:
        if self.retry_after_max is None:
            return None
        return parse_iso8601_duration_s(self.retry_after_max)

"""PingSource (sources.knative.dev/v1): a CloudEvent on a cron schedule."""

from __future__ import annotations

import base64
import binascii
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import field_validator, model_validator

from knray.manifests.base import NonEmptyStr, Resource
from knray.manifests.sources import SourceSpec

__all__ = ["PingSource", "PingSourceSpec"]


def _cron_fields(schedule: str) -> str:
    # Knative accepts a CRON_TZ=/TZ= prefix (robfig/cron); the rest is a 5-field expression.
    text = schedule.strip()
    if text.startswith(("CRON_TZ=", "TZ=")):
        _, _, text = text.partition(" ")
    return text.strip()


class PingSourceSpec(SourceSpec):
    """``spec`` of a PingSource."""

    schedule: NonEmptyStr
    timezone: str | None = None
    content_type: str | None = None
    data: str | None = None
    data_base64: str | None = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, schedule: str) -> str:
        fields = _cron_fields(schedule)
        if schedule.strip().startswith(("CRON_TZ=", "TZ=")):
            zone = schedule.strip().split(" ", 1)[0].split("=", 1)[1]
            _check_zone(zone)
        if fields.startswith("@"):
            if fields in {
                "@yearly",
                "@annually",
                "@monthly",
                "@weekly",
                "@daily",
                "@midnight",
                "@hourly",
            } or fields.startswith("@every "):
                return schedule
            raise ValueError(f"unknown cron descriptor {fields!r}")
        if len(fields.split()) != 5 or not croniter.is_valid(fields):
            raise ValueError(
                f"invalid cron schedule {schedule!r}: expected 5 fields "
                "(minute hour day-of-month month day-of-week), e.g. '*/1 * * * *'"
            )
        return schedule

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, timezone: str | None) -> str | None:
        if timezone is not None:
            _check_zone(timezone)
        return timezone

    @field_validator("data_base64")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("not valid base64") from None
        return value

    @model_validator(mode="after")
    def _one_payload(self) -> PingSourceSpec:
        if self.data is not None and self.data_base64 is not None:
            raise ValueError("'data' and 'dataBase64' are mutually exclusive")
        return self


def _check_zone(zone: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {zone!r} (use an IANA name like 'Europe/Paris')"
        ) from None


class PingSource(Resource):
    """A Knative PingSource: emits ``dev.knative.sources.ping`` events on a schedule."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = (
        "sources.knative.dev/v1",
        "sources.knative.dev/v1beta2",
    )
    KIND: ClassVar[str] = "PingSource"

    spec: PingSourceSpec

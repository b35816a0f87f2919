"""What the broker does to an event entering it: arrival time and the reply-loop TTL.

References (knative/eventing): ``pkg/broker/ingress/ingress_handler.go`` ``receive`` (stamps
``knativearrivaltime``, applies the TTL defaulter, rejects a TTL <= 0), ``pkg/broker/ttl.go``
``TTLDefaulter`` (missing or invalid: the default; else decremented, never below 0),
``cmd/broker/ingress/main.go`` (``MAX_TTL`` default 255) and ``pkg/broker/filter/filter_handler.go``
(the TTL is removed before the subscriber sees the event and put back, unchanged, on its reply).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Final

from knray.events import CloudEvent

__all__ = [
    "ARRIVAL_TIME_EXTENSION",
    "DEFAULT_TTL",
    "TTL_EXTENSION",
    "format_arrival_time",
    "next_ttl",
    "read_ttl",
    "stamp_ingress",
]

TTL_EXTENSION: Final = "knativebrokerttl"
ARRIVAL_TIME_EXTENSION: Final = "knativearrivaltime"
DEFAULT_TTL: Final = 255


def read_ttl(event: CloudEvent) -> int | None:
    """The event's ``knativebrokerttl`` as an integer, or None when absent or not an integer."""
    value = event.get(TTL_EXTENSION)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip(), 10)
    except ValueError:
        return None


@functools.lru_cache(maxsize=8)  # a batch shares one clock reading: format it once
def format_arrival_time(now: datetime) -> str:
    """An RFC 3339 UTC timestamp with microseconds, as ``knativearrivaltime`` carries it."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_ttl(ttl: int | None, default_ttl: int = DEFAULT_TTL) -> int:
    """An entering event's TTL in the broker: the default when missing or invalid, else one
    less, never below 0. The broker drops the event when the result is <= 0."""
    return default_ttl if ttl is None else max(ttl - 1, 0)


def stamp_ingress(event: CloudEvent, now: datetime, default_ttl: int = DEFAULT_TTL) -> CloudEvent:
    """The event as the broker holds it: arrival time set, TTL defaulted or decremented.

    The caller drops it when its TTL is then <= 0 (``read_ttl(result) <= 0``).
    """
    ttl = next_ttl(read_ttl(event), default_ttl)
    return event.evolve({ARRIVAL_TIME_EXTENSION: format_arrival_time(now), TTL_EXTENSION: ttl})

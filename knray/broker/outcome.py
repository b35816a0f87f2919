"""What happened to an event: the values that flow back from subscribers to sources."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from knray.events import CloudEvent
from knray.events.packed import PackedEvents, pack_events, unpack_events

__all__ = [
    "DeliveryStatus",
    "EventSink",
    "Outcome",
    "PackedOutcomes",
    "PackedResponses",
    "Subscriber",
    "SubscriberResponse",
    "pack_outcomes",
    "pack_responses",
    "unpack_outcomes",
    "unpack_responses",
]


class DeliveryStatus(StrEnum):
    """The final state of one event at one hop. Every status but FAILED counts as finished
    for at-least-once purposes: a source may commit the event's offset."""

    DELIVERED = "delivered"  # every matching subscriber accepted it (2xx / handler returned)
    FILTERED = "filtered"  # no trigger matched; nothing to do
    DEAD_LETTERED = "dead_lettered"  # retries exhausted; the dead-letter sink accepted it
    DROPPED = "dropped"  # retries exhausted, no dead-letter sink: logged and counted
    FAILED = "failed"  # not finished (e.g. the dead-letter sink failed too): do not commit


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of handing one event to a sink (a Broker, a Service or a URI)."""

    status: DeliveryStatus
    error: str | None = None

    @property
    def finished(self) -> bool:
        """True when the event needs no more work, so its offset may be committed."""
        return self.status is not DeliveryStatus.FAILED

    def __reduce__(self) -> tuple[Any, ...]:
        # Outcomes cross Ray by the thousand; the generated slots pickling walks fields().
        return (Outcome, (self.status, self.error))


@dataclass(frozen=True, slots=True)
class SubscriberResponse:
    """One subscriber's answer to one event, as an HTTP-like status code.

    ``code`` is 200-299 for success; Knative's retry rules (no response, 404, 408, 409, 429,
    5xx) are applied to it by the broker. ``code`` None means no response (timeout, crash).
    ``reply`` is the event the subscriber returned, if any; it re-enters the broker.
    ``retry_after_s`` is a 429/503 ``Retry-After`` in seconds; ``body`` the start of a failed
    response's body (both feed Knative's retry and dead-letter rules).
    """

    code: int | None
    reply: CloudEvent | None = None
    error: str | None = None
    retry_after_s: float | None = None
    body: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            SubscriberResponse,
            (self.code, self.reply, self.error, self.retry_after_s, self.body),
        )


class Subscriber(Protocol):
    """Something events are delivered to: a Serve deployment or an HTTP URI.

    ``send`` delivers a batch and returns one response per event, in order, within
    ``timeout_s`` per event attempt (None: no timeout). It never raises for a failed event:
    failures are responses with a non-2xx code or ``code=None``.
    """

    @property
    def address(self) -> str:
        """A name for logs and the ``knativeerrordest`` extension (a URI or a service name)."""
        ...

    async def send(
        self, events: Sequence[CloudEvent], timeout_s: float | None
    ) -> list[SubscriberResponse]: ...


class EventSink(Protocol):
    """Where a source sends batches: a Broker, a Service or a URI, with delivery applied.

    ``deliver`` returns one Outcome per event, in order, once each event is finished (or has
    definitely failed). A source commits an offset only when its event's Outcome is finished.
    """

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]: ...


# --- wire forms: what crosses between Ray processes by the thousand ----------------------
# Plain tuples pickle on the C fast path; dataclasses and enums go through a Python reducer
# per object (see knray.events.packed).
PackedOutcomes = list[tuple[str, str | None]]
PackedResponses = list[
    tuple[int | None, PackedEvents | None, str | None, float | None, bytes | None]
]


def pack_outcomes(outcomes: Sequence[Outcome]) -> PackedOutcomes:
    """``outcomes`` as plain tuples; :func:`unpack_outcomes` restores them."""
    return [(outcome.status.value, outcome.error) for outcome in outcomes]


def unpack_outcomes(packed: PackedOutcomes) -> list[Outcome]:
    """The outcomes of a :func:`pack_outcomes` list."""
    return [Outcome(DeliveryStatus(status), error) for status, error in packed]


def pack_responses(responses: Sequence[SubscriberResponse]) -> PackedResponses:
    """``responses`` as plain tuples; :func:`unpack_responses` restores them."""
    return [
        (
            r.code,
            None if r.reply is None else pack_events([r.reply]),
            r.error,
            r.retry_after_s,
            r.body,
        )
        for r in responses
    ]


def unpack_responses(packed: PackedResponses) -> list[SubscriberResponse]:
    """The responses of a :func:`pack_responses` list."""
    return [
        SubscriberResponse(
            code, None if reply is None else unpack_events(reply)[0], error, retry_after_s, body
        )
        for code, reply, error, retry_after_s, body in packed
    ]

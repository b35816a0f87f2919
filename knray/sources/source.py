"""The Source protocol: what the runtime needs from every source kind's consumer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from knray.broker.outcome import EventSink, Outcome
from knray.events import CloudEvent

__all__ = ["Source", "send_to_sink"]

_log = logging.getLogger(__name__)


class Source(Protocol):
    """One running consumer of a source, delivering batches of CloudEvents to an EventSink.

    ``run()`` consumes until :meth:`stop`; cancelling it abandons in-flight events without
    acknowledging them (the server redelivers them). ``stop(drain)`` stops fetching, waits for
    in-flight events when ``drain`` and acknowledges what finished. A message is acknowledged
    (offset committed, XACK, ack) only after its event's delivery Outcome is finished.
    ``stats()`` returns plain counters (``consumed``, ``finished``, ``failed``, ...).
    """

    async def run(self) -> None: ...

    async def stop(self, drain: bool = True) -> None: ...

    def stats(self) -> dict[str, Any]: ...


async def send_to_sink(sink: EventSink, events: Sequence[CloudEvent]) -> list[Outcome | None]:
    """``sink.deliver(events)``; None for each event when the sink failed or answered with the
    wrong number of outcomes (the caller retries those events)."""
    try:
        outcomes = await sink.deliver(events)
    except Exception as error:
        _log.warning("sink failed for %d events (will retry): %r", len(events), error)
        return [None] * len(events)
    if len(outcomes) != len(events):
        _log.error("sink returned %d outcomes for %d events", len(outcomes), len(events))
        return [None] * len(events)
    return list(outcomes)

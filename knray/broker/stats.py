"""Delivery counters of a dispatcher, per route and in total, as plain dicts; and a bounded
record of each route's most recent deliveries."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from typing import Any, Final

from knray.broker.outcome import DeliveryStatus
from knray.events import CloudEvent

__all__ = ["BROKER_COUNTERS", "ROUTE_COUNTERS", "DispatchStats", "RecentDeliveries"]

ROUTE_COUNTERS: Final = (
    "matched",
    "delivered",
    "retries",
    "dead_lettered",
    "dropped",
    "failed",
    "replies",
)
# received: events entering from a source; batches: the calls that brought them (received /
# batches is the batch size the sources achieve); reply_events: replies re-entering the broker;
# filtered: events no route matched; ttl_dropped: events or replies dropped with TTL exhausted.
BROKER_COUNTERS: Final = ("received", "batches", "reply_events", "filtered", "ttl_dropped")


class DispatchStats:
    """Counters that survive route updates: totals keep counting removed routes."""

    def __init__(self) -> None:
        self._routes: dict[str, Counter[str]] = {}
        self._totals: Counter[str] = Counter()

    def track(self, keys: list[str]) -> None:
        """Keep counters for exactly these route keys (new ones start at zero)."""
        self._routes = {key: self._routes.get(key, Counter()) for key in keys}

    def add_route(self, key: str, counter: str, n: int = 1) -> None:
        """Add ``n`` to a route counter and to the matching total."""
        if n:
            counts = self._routes.get(key)
            if counts is None:  # not setdefault: that builds a Counter on every call
                counts = self._routes[key] = Counter()
            counts[counter] += n
            self._totals[counter] += n

    def add(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to a broker-level counter."""
        if n:
            self._totals[counter] += n

    def snapshot(self) -> dict[str, dict[str, dict[str, int]] | dict[str, int]]:
        """``{"routes": {key: {counter: n}}, "totals": {counter: n}}`` with every counter."""
        routes = {
            key: {name: counts[name] for name in ROUTE_COUNTERS}
            for key, counts in self._routes.items()
        }
        totals = {name: self._totals[name] for name in (*BROKER_COUNTERS, *ROUTE_COUNTERS)}
        return {"routes": routes, "totals": totals}


# One final result of one event at one route: (time_s, event, status, error, reply).
_Entry = tuple[float, CloudEvent, DeliveryStatus, str | None, CloudEvent | None]


class RecentDeliveries:
    """The last ``limit`` final results of each route (memory stays bounded whatever the
    traffic; retries are counted in the stats, not recorded here)."""

    def __init__(self, limit: int = 100) -> None:
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        self.limit = limit
        self._routes: dict[str, deque[_Entry]] = {}

    def track(self, keys: list[str]) -> None:
        """Keep records for exactly these route keys."""
        self._routes = {key: self._routes.get(key, deque(maxlen=self.limit)) for key in keys}

    def add(
        self,
        key: str,
        time_s: float,
        events: Sequence[CloudEvent],
        results: Sequence[tuple[DeliveryStatus, str | None, CloudEvent | None]],
    ) -> None:
        """Record the final results of a batch delivered at one route."""
        record = self._routes.get(key)
        if record is None or not self.limit:
            return
        start = max(0, len(events) - self.limit)  # only the last ones would stay anyway
        record.extend(
            (time_s, event, *result)
            for event, result in zip(events[start:], results[start:], strict=True)
        )

    def rows(self, key: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Recorded deliveries as plain dicts, oldest first (of one route, or all)."""
        keys = [key] if key is not None else list(self._routes)
        rows = [_row(route, entry) for route in keys for entry in self._routes.get(route, deque())]
        rows.sort(key=lambda row: float(row["time_s"]))
        return rows[-limit:] if limit else rows


def _row(route: str, entry: _Entry) -> dict[str, Any]:
    time_s, event, status, error, reply = entry
    return {
        "time_s": time_s,
        "trigger": route,
        "id": event.get("id"),
        "type": event.get("type"),
        "source": event.get("source"),
        "subject": event.get("subject"),
        "status": str(status),
        "error": error,
        "reply_type": None if reply is None else reply.get("type"),
        "data": event.get_data(),
    }

"""Delivery counters of a dispatcher, per route and in total, as plain dicts."""

from __future__ import annotations

from collections import Counter
from typing import Final

__all__ = ["BROKER_COUNTERS", "ROUTE_COUNTERS", "DispatchStats"]

ROUTE_COUNTERS: Final = (
    "matched",
    "delivered",
    "retries",
    "dead_lettered",
    "dropped",
    "failed",
    "replies",
)
# received: events entering from a source; reply_events: replies re-entering the broker;
# filtered: events no route matched; ttl_dropped: events or replies dropped with TTL exhausted.
BROKER_COUNTERS: Final = ("received", "reply_events", "filtered", "ttl_dropped")


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

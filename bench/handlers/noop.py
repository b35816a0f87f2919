"""A handler that does nothing: the benchmarks measure knray, not the model."""

from __future__ import annotations

from knray import CloudEvent


def noop(event: CloudEvent) -> None:
    """Accept the event."""


async def noop_async(event: CloudEvent) -> None:
    """Accept the event without a thread hop."""

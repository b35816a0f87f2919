"""What the message-server source tests share: a recording sink, and a server check that
fails (never skips) when a server is down."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Sequence

import pytest

from knray.broker.outcome import DeliveryStatus, Outcome
from knray.events import CloudEvent

DELIVERED = Outcome(DeliveryStatus.DELIVERED)
FAILED = Outcome(DeliveryStatus.FAILED, error="try again")


def require_server(host: str, port: int, what: str) -> None:
    """Fail the test (not skip) when ``what`` does not answer: `.ci/run` starts it."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as error:
        pytest.fail(
            f"{what} is not running on {host}:{port} ({error}); start it with "
            "`bash scripts/services.sh`"
        )


class RecordingSink:
    """Records what it accepts; after ``gate_after`` events it holds deliveries until
    ``gate`` is set (the stream stops mid-way whatever the machine's speed); ``fail``
    answers FAILED for chosen events."""

    def __init__(
        self,
        gate: asyncio.Event | None = None,
        gate_after: int = 0,
        fail: Callable[[CloudEvent], bool] | None = None,
    ) -> None:
        self.events: list[CloudEvent] = []
        self.gate = gate
        self.gate_after = gate_after
        self.fail = fail

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        if self.gate is not None and len(self.events) >= self.gate_after:
            await self.gate.wait()
        outcomes = []
        for event in events:
            if self.fail is not None and self.fail(event):
                outcomes.append(FAILED)
            else:
                self.events.append(event)
                outcomes.append(DELIVERED)
        return outcomes

    def data(self) -> list[str]:
        return [event.encoded_data().decode() for event in self.events]


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)

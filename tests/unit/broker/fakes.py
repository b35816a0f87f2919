"""In-memory subscribers and a fake sleep for the broker's unit tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from knray.broker import SubscriberResponse
from knray.events import CloudEvent

Respond = Callable[[CloudEvent, int, float | None], SubscriberResponse]


def make_event(event_id: str = "1", **attributes: Any) -> CloudEvent:
    data = attributes.pop("data", None)
    base = {"specversion": "1.0", "id": event_id, "source": "/test", "type": "test.event"}
    return CloudEvent(base | attributes, data)


class FakeSubscriber:
    """Answers each event with ``respond(event, attempt_number, timeout_s)``; records calls."""

    def __init__(self, respond: Respond | None = None, address: str = "fake://subscriber") -> None:
        self._respond = respond or (lambda event, attempt, timeout: SubscriberResponse(200))
        self._address = address
        self.calls: list[list[CloudEvent]] = []
        self.timeouts: list[float | None] = []
        self.attempts: Counter[str] = Counter()

    @property
    def address(self) -> str:
        return self._address

    @property
    def received(self) -> list[CloudEvent]:
        return [event for call in self.calls for event in call]

    async def send(
        self, events: Sequence[CloudEvent], timeout_s: float | None
    ) -> list[SubscriberResponse]:
        self.calls.append(list(events))
        self.timeouts.append(timeout_s)
        responses = []
        for event in events:
            self.attempts[event.get_id()] += 1
            responses.append(self._respond(event, self.attempts[event.get_id()], timeout_s))
        return responses


def failing(times: int, code: int | None = 503, **extra: Any) -> Respond:
    """Fail the first ``times`` attempts of every event with ``code``, then accept."""

    def respond(event: CloudEvent, attempt: int, timeout: float | None) -> SubscriberResponse:
        if attempt <= times:
            return SubscriberResponse(code, error="boom" if code is None else None, **extra)
        return SubscriberResponse(200)

    return respond


def always(code: int | None, **extra: Any) -> Respond:
    return lambda event, attempt, timeout: SubscriberResponse(code, **extra)


class FakeSleep:
    """Records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)

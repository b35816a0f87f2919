"""Handlers that record what they receive in the ``Recorder`` actor, readable by the tests.

Every test event carries the extension ``testrun`` (the test's unique run id); records are kept
under ``<testrun>/<channel>``, so one Recorder serves a whole session without mixing tests.
Replicas run in their own processes: the Recorder is a named Ray actor found by name.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any, Final

import ray

from knray.events import CloudEvent
from knray.serving import batch_handler

__all__ = [
    "RECORDER_NAME",
    "RECORDER_NAMESPACE",
    "RUN_EXTENSION",
    "Recorder",
    "dead_letters",
    "flaky",
    "ordered",
    "record",
    "record_batch",
    "reply_once",
]

RECORDER_NAME: Final = "Recorder"
RECORDER_NAMESPACE: Final = "knray"
RUN_EXTENSION: Final = "testrun"
REPLY_SOURCE: Final = "/tests/handlers/reply"


class Recorder:
    """Lists of records and attempt counters, by key (``<testrun>/<channel>``)."""

    def __init__(self) -> None:
        self._records: defaultdict[str, list[Any]] = defaultdict(list)
        self._attempts: Counter[str] = Counter()

    def record(self, key: str, items: list[Any]) -> None:
        self._records[key].extend(items)

    def attempt(self, key: str, event_id: str) -> int:
        """Count one more attempt at ``event_id``; returns the attempt number (1 first)."""
        self._attempts[f"{key}/{event_id}"] += 1
        return self._attempts[f"{key}/{event_id}"]

    def attempts(self, key: str) -> dict[str, int]:
        prefix = f"{key}/"
        return {k[len(prefix) :]: n for k, n in self._attempts.items() if k.startswith(prefix)}

    def get(self, key: str) -> list[Any]:
        return list(self._records.get(key, []))

    def ids(self, key: str) -> list[str]:
        return [item if isinstance(item, str) else item["id"] for item in self._records[key]]


_recorder: Any = None


def _get_recorder() -> Any:
    global _recorder  # noqa: PLW0603 - one handle per replica process
    if _recorder is None:
        _recorder = ray.get_actor(RECORDER_NAME, namespace=RECORDER_NAMESPACE)
    return _recorder


def _key(event: CloudEvent, channel: str) -> str:
    return f"{event.get_extension(RUN_EXTENSION)}/{channel}"


def _data(event: CloudEvent) -> Any:
    data = event.get_data()
    if isinstance(data, bytes | str):
        try:
            return json.loads(data)
        except ValueError:
            return data
    return data


def _summary(event: CloudEvent) -> dict[str, Any]:
    return {
        "id": event.get_id(),
        "type": event.get_type(),
        "attributes": {name: str(value) for name, value in event.get_attributes().items()},
        "data": _data(event),
    }


async def record(event: CloudEvent) -> None:
    """Record every event under ``<testrun>/received`` (a plain async handler)."""
    await _get_recorder().record.remote(_key(event, "received"), [_summary(event)])


async def flaky(event: CloudEvent) -> None:
    """Count every attempt; ``data.fail`` "always" fails each attempt, "once" the first only."""
    attempt = await _get_recorder().attempt.remote(_key(event, "attempts"), event.get_id())
    fail = (_data(event) or {}).get("fail")
    if fail == "always" or (fail == "once" and attempt == 1):
        raise ValueError(f"boom {event.get_id()} attempt {attempt}")
    await _get_recorder().record.remote(_key(event, "received"), [_summary(event)])


async def dead_letters(event: CloudEvent) -> None:
    """A dead-letter sink: record each event with its Knative error extensions."""
    await _get_recorder().record.remote(_key(event, "dead"), [_summary(event)])


async def reply_once(event: CloudEvent) -> CloudEvent | None:
    """Record every event; answer ``order.created`` with an ``order.confirmed`` reply."""
    await _get_recorder().record.remote(_key(event, "received"), [_summary(event)])
    if event.get_type() != "order.created":
        return None
    return CloudEvent(
        {
            "specversion": "1.0",
            "id": f"reply-{event.get_id()}",
            "source": REPLY_SOURCE,
            "type": "order.confirmed",
            RUN_EXTENSION: str(event.get_extension(RUN_EXTENSION)),
            "datacontenttype": "application/json",
        },
        {"confirms": event.get_id()},
    )


async def ordered(event: CloudEvent) -> None:
    """Record ``(partitionkey, seq)`` in delivery order; the first attempt of every event whose
    ``seq`` is 2 modulo 5 fails, so retries happen in the middle of each key's sequence."""
    recorder = _get_recorder()
    seq = int(str(event.get_extension("seq")))
    attempt = await recorder.attempt.remote(_key(event, "attempts"), event.get_id())
    if seq % 5 == 2 and attempt == 1:
        raise ValueError(f"first attempt of {event.get_id()} fails")
    item = {"id": event.get_id(), "key": str(event.get_extension("partitionkey")), "seq": seq}
    await recorder.record.remote(_key(event, "ordered"), [item])


@batch_handler(max_batch_size=500, batch_wait_timeout_s=0.01)
async def record_batch(events: list[CloudEvent]) -> list[None]:
    """A batch handler recording the ids it gets (one Recorder call per batch)."""
    by_key: defaultdict[str, list[str]] = defaultdict(list)
    for event in events:
        by_key[_key(event, "received")].append(event.get_id())
    recorder = _get_recorder()
    for key, ids in by_key.items():
        await recorder.record.remote(key, ids)
    return [None] * len(events)

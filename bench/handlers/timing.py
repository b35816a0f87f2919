"""Handlers that record when each event reaches them, for bench/latency.py and bench/scaling.py.

Events carry their produce time in the ``producedat`` extension (microseconds since the epoch,
as text). A handler appends one row per event to a buffer in its replica; a thread sends the
buffer every 0.2 s to the named Ray actor ``bench-sink`` (created by the benchmark), so the hot
path costs one list append, not one Ray call per event. Rows are integers in microseconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

from knray import CloudEvent

PRODUCED_AT: Final = "producedat"
SINK_ACTOR: Final = "bench-sink"
SINK_NAMESPACE: Final = "knray"
_FLUSH_S: Final = 0.2


def _micros(seconds: float) -> int:
    return int(seconds * 1_000_000)


def event_number(event_id: Any) -> int:
    """The ``n`` of an id ``e<n>`` made by :func:`stamped_events`."""
    text = event_id.decode() if isinstance(event_id, bytes) else str(event_id)
    return int(text[1:])


def stamped_events(
    topic: str, count: int, event_type: str = "com.example.bench"
) -> Iterator[tuple[str, CloudEvent]]:
    """``count`` small events for ``produce_events``, each stamped with ``time.time()`` when
    it is handed to the producer (the generator is consumed lazily, one event per send)."""
    for n in range(count):
        yield (
            topic,
            CloudEvent(
                {
                    "specversion": "1.0",
                    "id": f"e{n}",
                    "source": "/bench",
                    "type": event_type,
                    "datacontenttype": "application/json",
                    PRODUCED_AT: str(_micros(time.time())),
                },
                {"n": n, "text": "timing payload"},
            ),
        )


class _Recorder:
    """Rows buffered in this process, shipped to the sink actor by a daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[tuple[int, ...]] = []
        self._thread: threading.Thread | None = None
        self._sink: Any = None

    def add(self, row: tuple[int, ...]) -> None:
        with self._lock:
            self._rows.append(row)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="bench-recorder", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        import ray  # noqa: PLC0415  (only replicas need it)

        while True:
            time.sleep(_FLUSH_S)
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                continue
            try:
                if self._sink is None:
                    self._sink = ray.get_actor(SINK_ACTOR, namespace=SINK_NAMESPACE)
                self._sink.add.remote(rows)
            except Exception:  # no sink (not under a benchmark): keep the rows for later
                with self._lock:
                    self._rows[:0] = rows


_recorder = _Recorder()


def _broker_arrival(event: Any) -> int:
    # ``knativearrivaltime``: when the broker's dispatcher took the event in (RFC 3339, UTC).
    stamp = event.get("knativearrivaltime")
    return _micros(datetime.fromisoformat(stamp).timestamp()) if stamp else 0


async def record_arrival(event: Any) -> None:
    """Record ``(produced, entered, event id, broker arrival)``: no work, no thread hop (an
    async handler)."""
    entered = time.time()
    produced = int(event.get(PRODUCED_AT))
    _recorder.add(
        (produced, _micros(entered), event_number(event.get("id")), _broker_arrival(event))
    )


def sleep_50ms(event: Any) -> None:
    """Work for 50 ms (a sync handler, in the replica's thread pool); record
    ``(produced, entered, finished, replica process id)``."""
    entered = time.time()
    time.sleep(0.05)
    finished = time.time()
    row = (int(event.get(PRODUCED_AT)), _micros(entered), _micros(finished), os.getpid())
    _recorder.add(row)

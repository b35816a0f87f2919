"""Microseconds per filter evaluation (compile excluded), printed as a Markdown table.

Run: python bench/filters.py [--cel-backend NAME]
Targets on the 2-core dev machine: exact <= 2 us, CESQL <= 15 us, CEL <= 10 us.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import timeit
from collections.abc import Callable
from typing import Any

from knray import CloudEvent
from knray.filters import Filter, compile_trigger

EVENT_DATA = {
    "user": "viewer-4821",
    "room": "public-17",
    "text": "that last play was awesome, gg everyone",
    "toxicity": 0.12,
    "lang": "en",
}


def make_event() -> CloudEvent:
    body = json.dumps(EVENT_DATA).encode()
    return CloudEvent.from_encoded(
        {
            "specversion": "1.0",
            "id": "4f6c1d2e-0001",
            "source": "https://example.com/chat",
            "type": "com.example.chat.message",
            "subject": "room/public-17",
            "datacontenttype": "application/json",
            "time": "2026-11-26T12:00:00Z",
            "platform": "livestream",
        },
        body,
    )


def trigger(filters: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "bench", "annotations": annotations or {}},
        "spec": {"broker": "default", "subscriber": {"uri": "http://127.0.0.1:9/"}} | filters,
    }


CASES: dict[str, dict[str, Any]] = {
    "exact, 3 attributes (filter.attributes)": trigger(
        {
            "filter": {
                "attributes": {
                    "type": "com.example.chat.message",
                    "source": "https://example.com/chat",
                    "platform": "livestream",
                }
            }
        }
    ),
    "exact, 3 attributes (filters: 3 x exact)": trigger(
        {
            "filters": [
                {"exact": {"type": "com.example.chat.message"}},
                {"exact": {"source": "https://example.com/chat"}},
                {"exact": {"platform": "livestream"}},
            ]
        }
    ),
    "prefix": trigger({"filters": [{"prefix": {"type": "com.example.chat."}}]}),
    "CESQL: LIKE and AND": trigger(
        {
            "filters": [
                {
                    "cesql": "type LIKE 'com.example.%' AND source = 'https://example.com/chat'"
                    " AND subject LIKE 'room/public-%'"
                }
            ]
        }
    ),
    "CEL over data": trigger(
        {
            "filters": [
                {"cel": 'event.type == "com.example.chat.message" && event.data.toxicity < 0.8'}
            ]
        }
    ),
}


def hundred_triggers() -> list[Filter]:
    """A realistic broker: 70 attribute triggers, 20 CESQL, 10 CEL; 10 match the event."""
    triggers: list[Filter] = []
    for i in range(70):
        kind = "com.example.chat.message" if i < 4 else f"com.example.other.{i}"
        triggers.append(compile_trigger(trigger({"filter": {"attributes": {"type": kind}}})))
    for i in range(20):
        room = "public-%" if i < 3 else f"private-{i}%"
        expression = f"type LIKE 'com.example.%' AND subject LIKE 'room/{room}'"
        triggers.append(compile_trigger(trigger({"filters": [{"cesql": expression}]})))
    for i in range(10):
        threshold = 0.5 if i < 3 else 0.01 * i
        expression = f"event.data.toxicity < {threshold}"
        triggers.append(compile_trigger(trigger({"filters": [{"cel": expression}]})))
    return triggers


def per_call_us(function: Callable[[], object], repeat: int = 7) -> float:
    timer = timeit.Timer(function)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cel-backend", help="CEL backend to measure (default: knray's default)")
    args = parser.parse_args()
    if args.cel_backend:
        os.environ["KNRAY_CEL_BACKEND"] = args.cel_backend
    event = make_event()
    rows: list[tuple[str, float]] = []
    for name, manifest in CASES.items():
        compiled = compile_trigger(manifest)
        assert compiled.match(event), name
        # A fresh event per call would measure decoding too; data is decoded once per event in
        # the broker, so the cached decode is what a filter sees.
        rows.append((name, per_call_us(lambda c=compiled: c.match(event))))
    triggers = hundred_triggers()
    matching = sum(t.match(event) for t in triggers)
    assert matching == 10, matching
    total = per_call_us(lambda: [t.match(event) for t in triggers])
    rows.append(("1 event x 100 triggers (10 match), total", total))
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    print(f"CEL backend: {os.environ.get('KNRAY_CEL_BACKEND') or 'default'}")
    print()
    print("| filter | us per evaluation |")
    print("|---|---:|")
    for name, micros in rows:
        print(f"| {name} | {micros:.2f} |")


if __name__ == "__main__":
    main()

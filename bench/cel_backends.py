"""Microseconds per CEL filter evaluation, per backend (compile excluded).

    python bench/cel_backends.py [--number N] [--repeat R]

Evaluates ``event.type == "chat.message" && event.data.toxicity > 0.8`` with
``CELFilter.match`` on a realistic chat event that arrived as JSON bytes. The event's data is
decoded once, on the first evaluation, as a broker decodes it once for all its triggers; the
figures are the cost of one more filter on an event. Also times a filter that reads the whole
event (no projection possible), prints which backend is the default, and probes the semantics
on which backends are known to differ.
"""

from __future__ import annotations

import argparse
import json
import os
import timeit

from knray.cel import BACKEND_ENV_VAR, BACKENDS, DEFAULT_BACKEND
from knray.errors import CELCompileError
from knray.events import CloudEvent
from knray.filters import CELFilter

EXPRESSION = 'event.type == "chat.message" && event.data.toxicity > 0.8'
WHOLE_EVENT_EXPRESSION = '"tenant" in event && size(event.data.text) > 0'

ATTRIBUTES = {
    "specversion": "1.0",
    "id": "6f1c2a9e-3b7d-4e0a-9c55-1f2e3d4c5b6a",
    "source": "/chat/rooms/general",
    "type": "chat.message",
    "time": "2024-05-01T12:34:56.789Z",
    "datacontenttype": "application/json",
    "subject": "room/general",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "partitionkey": "user-42",
    "tenant": "acme",
}
DATA = {
    "message_id": "m-8812",
    "room": "general",
    "user": {"id": "user-42", "name": "Alice", "roles": ["member"]},
    "text": "Hello everyone, has anyone tried the new deployment pipeline yet? " * 3,
    "lang": "en",
    "tokens": 57,
    "toxicity": 0.93,
    "scores": {"spam": 0.01, "toxicity": 0.93, "sentiment": -0.4},
    "flags": [],
    "reply_to": None,
}


def _event() -> CloudEvent:
    return CloudEvent.from_encoded(ATTRIBUTES, json.dumps(DATA).encode())


def _microseconds(cel_filter: CELFilter, number: int, repeat: int) -> float:
    event = _event()
    assert cel_filter.match(event) is True, f"{cel_filter!r} does not match the sample event"
    best = min(timeit.repeat(lambda: cel_filter.match(event), number=number, repeat=repeat))
    return best / number * 1e6


def _probes(backend: str) -> list[str]:
    """Cases where some backend is known to differ from cel-go (Dapr); empty when it passes."""
    event = _event()
    problems = []
    if not CELFilter("event.data.toxicity > 0 && event.data.tokens > 10.5", backend).match(event):
        problems.append("no cross-type numeric comparison (int vs double) -> no match")
    if not CELFilter("!has(event.nope)", backend).match(event):
        problems.append("'!has(...)' is an evaluation error -> no match")
    try:
        CELFilter('1 + "a" == 2', backend)
        problems.append("static type errors are not compile errors (no match at evaluation)")
    except CELCompileError:
        pass
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="evaluations per timing")
    parser.add_argument("--repeat", type=int, default=5, help="timings per backend (best kept)")
    options = parser.parse_args()

    print(f"expression: {EXPRESSION}")
    print(f"event: {len(ATTRIBUTES)} attributes, {len(json.dumps(DATA))} bytes of JSON data")
    print(f"whole event: {WHOLE_EVENT_EXPRESSION} (reads every attribute and all the data)")
    print(f"best of {options.repeat} x {options.number} evaluations (fewer for slow backends)\n")
    print(f"{'backend':<28}{'us/eval':>10}{'whole event':>14}  semantics")
    results: dict[str, float] = {}
    for backend in BACKENDS:
        number = options.number if "interpreted" not in backend else max(options.number // 20, 50)
        if backend.startswith("cel-python"):
            number = max(number // 5, 50)
        results[backend] = _microseconds(CELFilter(EXPRESSION, backend), number, options.repeat)
        whole = _microseconds(CELFilter(WHOLE_EVENT_EXPRESSION, backend), number, options.repeat)
        problems = _probes(backend)
        verdict = "passes all probes" if not problems else "; ".join(problems)
        print(f"{backend:<28}{results[backend]:>10.2f}{whole:>14.2f}  {verdict}")

    interpreted, compiled = results["cel-python-interpreted"], results["cel-python"]
    print(
        f"\ncel-python: interpreted {interpreted:.1f} us vs compiled {compiled:.1f} us "
        f"({interpreted / compiled:.1f}x)"
    )
    chosen = os.environ.get(BACKEND_ENV_VAR, "").strip()
    print(f"default backend: {DEFAULT_BACKEND} ({results[DEFAULT_BACKEND]:.2f} us/eval)")
    if chosen:
        print(f"{BACKEND_ENV_VAR}={chosen} overrides the default in this environment")


if __name__ == "__main__":
    main()

"""Per-event cost of knray's CloudEvents bindings next to the cloudevents SDK (2.x core).

Run: ``python bench/events.py [--number N] [--repeat R]``. Prints microseconds per event (best
of R runs of N calls) and the ratio SDK / knray (above 1 means knray is faster). Both sides
parse the same message. knray parses lazily (data decoded on first ``get_data()``), so its
binary rows are shown with and without reading the data; the SDK always decodes it.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat

from knray.events import (
    CloudEvent,
    KafkaRecord,
    from_http,
    from_http_binary,
    from_http_structured,
    from_kafka,
    to_http_binary,
    to_http_structured,
    to_kafka_binary,
    to_kafka_structured,
)

# About 200 bytes on the wire in either mode.
EVENT = CloudEvent(
    {
        "specversion": "1.0",
        "type": "com.example.order.created",
        "source": "/shop/orders",
        "id": "b5b2c6f0-7d41-4d7b",
        "time": "2024-05-01T12:00:00Z",
        "datacontenttype": "application/json",
    },
    {"order": 4711, "total": 99.5},
)


def measure(function: Callable[[], object], number: int, repeat: int) -> float:
    """Best microseconds per call."""
    return min(timeit.repeat(function, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--number", type=int, default=20_000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is kept")
    args = parser.parse_args()

    fmt = JSONFormat()
    binary_headers, binary_body = to_http_binary(EVENT)
    structured_headers, structured_body = to_http_structured(EVENT)
    kafka_binary = to_kafka_binary(EVENT)
    kafka_structured = to_kafka_structured(EVENT)
    http_binary_msg = sdk_http.HTTPMessage(headers=binary_headers, body=binary_body)
    http_structured_msg = sdk_http.HTTPMessage(headers=structured_headers, body=structured_body)
    kafka_binary_msg = sdk_kafka.KafkaMessage(
        headers=dict(kafka_binary.headers), key=None, value=kafka_binary.value or b""
    )
    kafka_structured_msg = sdk_kafka.KafkaMessage(
        headers=dict(kafka_structured.headers), key=None, value=kafka_structured.value or b""
    )
    sdk_event = sdk_http.from_binary(http_binary_msg, fmt)

    def to_record(message: sdk_kafka.KafkaMessage) -> KafkaRecord:
        return KafkaRecord(key=None, value=message.value, headers=tuple(message.headers.items()))

    binary_record = to_record(kafka_binary_msg)
    structured_record = to_record(kafka_structured_msg)

    rows: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        (
            "HTTP binary parse",
            lambda: sdk_http.from_binary(http_binary_msg, fmt),
            lambda: from_http_binary(binary_headers, binary_body),
        ),
        (
            "HTTP binary parse + get_data()",
            lambda: sdk_http.from_binary(http_binary_msg, fmt).get_data(),
            lambda: from_http_binary(binary_headers, binary_body).get_data(),
        ),
        (
            "HTTP any mode (from_http), binary",
            lambda: sdk_http.from_http(http_binary_msg, fmt),
            lambda: from_http(binary_headers, binary_body),
        ),
        (
            "HTTP structured parse",
            lambda: sdk_http.from_structured(http_structured_msg, fmt),
            lambda: from_http_structured(structured_headers, structured_body),
        ),
        (
            "Kafka binary parse",
            lambda: sdk_kafka.from_binary(kafka_binary_msg, fmt),
            lambda: from_kafka(binary_record),
        ),
        (
            "Kafka structured parse",
            lambda: sdk_kafka.from_structured(kafka_structured_msg, fmt),
            lambda: from_kafka(structured_record),
        ),
        (
            "HTTP binary encode",
            lambda: sdk_http.to_binary(sdk_event, fmt),
            lambda: to_http_binary(EVENT),
        ),
        (
            "HTTP structured encode",
            lambda: sdk_http.to_structured(sdk_event, fmt),
            lambda: to_http_structured(EVENT),
        ),
    ]

    binary_size = len(binary_body) + sum(len(k) + len(v) + 4 for k, v in binary_headers.items())
    print(
        f"event: {len(structured_body)} bytes structured, {binary_size} bytes binary "
        f"(headers + body); {args.number} calls x {args.repeat} runs, best run"
    )
    print(f"{'operation':36} {'SDK us':>8} {'knray us':>9} {'SDK/knray':>10}")
    for name, sdk_call, knray_call in rows:
        sdk_us = measure(sdk_call, args.number, args.repeat)
        knray_us = measure(knray_call, args.number, args.repeat)
        print(f"{name:36} {sdk_us:8.2f} {knray_us:9.2f} {sdk_us / knray_us:10.2f}")


if __name__ == "__main__":
    main()

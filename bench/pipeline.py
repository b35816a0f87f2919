"""Pieces the benchmarks share: the KafkaSource -> Broker manifests, the actor collecting
handler timings, waiting and percentiles."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable

import ray

__all__ = ["Sink", "kafka_to_broker", "percentile", "wait_for"]


def kafka_to_broker(namespace: str, topic: str, bootstrap: str, broker: str = "bench") -> str:
    """YAML of a Broker and a KafkaSource (one consumer, unordered, a fresh group) feeding it;
    a benchmark appends its Service and Triggers after a ``---``."""
    return f"""
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: {broker}, namespace: {namespace}}}
---
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {{name: bench, namespace: {namespace}}}
spec:
  bootstrapServers: ["{bootstrap}"]
  topics: ["{topic}"]
  consumerGroup: knray-{uuid.uuid4().hex[:6]}
  consumers: 1
  initialOffset: earliest
  ordering: unordered
  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: {broker}}}}}
"""


@ray.remote(num_cpus=0)
class Sink:
    """Collects the rows the handlers send (see bench/handlers/timing.py)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, ...]] = []

    def add(self, rows: list[tuple[int, ...]]) -> None:
        self.rows.extend(rows)

    def count(self) -> int:
        return len(self.rows)

    def take(self) -> list[tuple[int, ...]]:
        rows, self.rows = self.rows, []
        return rows


def wait_for(what: str, check: Callable[[], object], timeout_s: float) -> None:
    """Poll ``check`` every 0.2 s until it is true; TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]

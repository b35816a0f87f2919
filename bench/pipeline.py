"""Pieces the benchmarks share: the KafkaSource -> Broker manifests, the actor collecting
handler timings, waiting, percentiles and CPU accounting."""

from __future__ import annotations

import argparse
import math
import shutil
import time
import uuid
from collections.abc import Callable

import psutil
import ray

from knray.testing.kafka import ApacheKafka, TansuBroker, start_kafka

__all__ = [
    "CpuMeter",
    "Sink",
    "add_kafka_option",
    "fetch_max_wait_ms",
    "kafka_to_broker",
    "percentile",
    "start_bench_kafka",
    "wait_for",
]


def add_kafka_option(parser: argparse.ArgumentParser) -> None:
    """``--kafka apache|tansu``: Apache Kafka (the reference) when Java is present."""
    parser.add_argument(
        "--kafka",
        choices=["apache", "tansu"],
        default="apache" if shutil.which("java") else "tansu",
        help="the broker of the run (default: apache when Java is installed, else tansu)",
    )


def start_bench_kafka(kind: str) -> ApacheKafka | TansuBroker:
    """Start the run's broker and say which it is."""
    server = start_kafka("apache" if kind == "apache" else "tansu")
    name = f"Apache Kafka {server.version}" if isinstance(server, ApacheKafka) else "Tansu"
    print(f"broker: {name} at {server.bootstrap}", flush=True)
    return server


def fetch_max_wait_ms(kind: str) -> int:
    """aiokafka's ``fetch_max_wait_ms`` for a latency-sensitive consumer on ``kind``.

    Apache Kafka answers a fetch as soon as data is there, so aiokafka's default (500) costs
    no latency; Tansu holds every fetch for the whole wait, so it gets 10 ms.
    """
    return 500 if kind == "apache" else 10


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


def _role(process: psutil.Process) -> str:
    """``BrokerActor``, ``ServeReplica``, ``raylet``, ...: Ray names its workers ``ray::Class``."""
    command = process.cmdline()
    name = command[0] if command else process.name()
    if name.startswith("ray::"):
        return name[5:].split(":")[0].split(".")[0].split(" ")[0]
    return name.rsplit("/", 1)[-1].split(" ")[0]


class CpuMeter:
    """CPU seconds spent by this process and everything it started (the local Ray cluster),
    by role, between :meth:`start` and :meth:`stop`. CPU time, unlike wall time, barely moves
    with the machine's other load, so per-event figures compare across runs."""

    def __init__(self) -> None:
        self._before: dict[int, tuple[str, float]] = {}
        self.seconds: dict[str, float] = {}

    @staticmethod
    def _sample() -> dict[int, tuple[str, float]]:
        me = psutil.Process()
        sample: dict[int, tuple[str, float]] = {}
        for process in [me, *me.children(recursive=True)]:
            try:
                times = process.cpu_times()
                sample[process.pid] = (_role(process), times.user + times.system)
            except psutil.Error:
                continue  # ended meanwhile
        return sample

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        for pid, (role, used) in self._sample().items():
            earlier = self._before.get(pid, (role, 0.0))[1]
            seconds[role] = seconds.get(role, 0.0) + max(used - earlier, 0.0)
        self.seconds = seconds
        return seconds

    def per_event_table(self, events: int, top: int = 6) -> str:
        """The busiest roles in microseconds of CPU per event, and the total."""
        rows = sorted(self.seconds.items(), key=lambda item: -item[1])
        total = sum(self.seconds.values())
        lines = [f"  {role:<22}{used / events * 1e6:>8.1f}" for role, used in rows[:top]]
        lines.append(f"  {'total':<22}{total / events * 1e6:>8.1f}")
        return "\n".join(lines)

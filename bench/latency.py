"""Latency from produce time to handler entry: knray next to a raw aiokafka consumer.

Run: python bench/latency.py [--rate 2000] [--seconds 30] [--warmup 5] [--kafka apache|tansu]

One run, one broker (Apache Kafka unless ``--kafka tansu``; 4 partitions per topic), the
same paced load for both:
- raw:   an aiokafka consumer (its own process, partitions assigned, no group) reading a topic;
         latency = wall time when ``getmany`` returns the record - its produce time;
- knray: KafkaSource -> Broker -> one Trigger (CESQL filter) -> an async handler on one replica
         (``bench.handlers.timing:record_arrival``); latency = wall time at handler entry -
         produce time.
Each event carries its produce time (``time.time()`` just before ``producer.send``) in the
``producedat`` extension, in microseconds. Events produced in the first ``--warmup`` seconds are
left out of both. The last line is ``knray p99 - raw p99: X ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.handlers.timing import (
    PRODUCED_AT,
    SINK_ACTOR,
    SINK_NAMESPACE,
    event_number,
    stamped_events,
)
from bench.pipeline import (
    Sink,
    add_kafka_option,
    fetch_max_wait_ms,
    kafka_to_broker,
    percentile,
    start_bench_kafka,
    wait_for,
)
from knray.errors import ManifestWarning
from knray.manifests import parse_manifests
from knray.runtime import Runtime, connect
from knray.runtime.names import RAY_NAMESPACE, source_actor_name
from knray.testing.kafka import create_topics, produce_events

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
NAMESPACE = "benchlat"


@dataclass(frozen=True)
class Load:
    """What one run offers: ``count`` events to ``topic`` at ``rate`` per second, read with
    ``fetch_wait_ms`` as aiokafka's ``fetch_max_wait_ms``."""

    bootstrap: str
    topic: str
    rate: float
    count: int
    fetch_wait_ms: int


def produce(load: Load) -> None:
    events = stamped_events(load.topic, load.count, "com.example.latency")
    asyncio.run(produce_events(load.bootstrap, events, rate_per_s=load.rate))


# --- raw: an aiokafka consumer in its own process -----------------------------------------
async def _raw_consume(load: Load, ready: Any) -> list[tuple[int, int, int]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=load.bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=load.fetch_wait_ms,
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(load.topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        ready.set()
        rows: list[tuple[int, int, int]] = []
        deadline = time.monotonic() + 600
        while len(rows) < load.count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            now = int(time.time() * 1_000_000)  # one read time for the whole fetch
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    produced = int(headers[f"ce_{PRODUCED_AT}"])
                    rows.append((produced, now, event_number(headers["ce_id"])))
        return rows
    finally:
        await consumer.stop()


def raw_consumer_process(load: Load, ready: Any, out: Any) -> None:
    out.send(asyncio.run(_raw_consume(load, ready)))
    out.close()


def run_raw(load: Load) -> list[tuple[int, int, int]]:
    """Rows ``(produced, read, event number)`` of a plain consumer in a separate process (as knray's
    consumer is in its own actor), so it does not share an event loop with the producer."""
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=raw_consumer_process, args=(load, ready, send), daemon=True)
    process.start()
    try:
        if not ready.wait(60):
            raise TimeoutError("raw consumer did not start")
        produce(load)
        if not receive.poll(120):
            raise TimeoutError("raw consumer did not report")
        rows: list[tuple[int, int, int]] = receive.recv()
        return rows
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()


# --- knray -------------------------------------------------------------------------------


def manifests(topic: str, bootstrap: str) -> str:
    return f"""
{kafka_to_broker(NAMESPACE, topic, bootstrap)}---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: arrival, namespace: {NAMESPACE}}}
spec:
  template:
    metadata:
      annotations:
        knray.dev/handler: bench.handlers.timing:record_arrival
        autoscaling.knative.dev/min-scale: "1"
        autoscaling.knative.dev/max-scale: "1"
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: all, namespace: {NAMESPACE}}}
spec:
  broker: bench
  filters: [{{cesql: "type LIKE 'com.example.%' AND source = '/bench'"}}]
  subscriber: {{ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: arrival}}}}
"""


def run_knray(load: Load) -> list[tuple[int, ...]]:
    """Rows ``(produced, handler entry, event number)`` of KafkaSource -> Broker -> Trigger
    -> Service."""
    sink = Sink.options(name=SINK_ACTOR, namespace=SINK_NAMESPACE).remote()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        resources = list(parse_manifests(manifests(load.topic, load.bootstrap)).resources)
    runtime = Runtime(
        consumer_options={"consumer_options": {"fetch_max_wait_ms": load.fetch_wait_ms}}
    )
    runtime.apply(resources)
    source_key = f"KafkaSource/{NAMESPACE}/bench"
    service_key = f"{NAMESPACE}/arrival"
    consumer = ray.get_actor(source_actor_name(source_key, 0), namespace=RAY_NAMESPACE)
    try:
        wait_for(
            "the replica",
            lambda: runtime.status()["services"].get(service_key, {}).get("replicas", 0) >= 1,
            120,
        )
        wait_for(
            "partition assignment",
            lambda: ray.get(consumer.stats.remote())["assigned"],
            60,
        )
        produce(load)
        wait_for("all arrivals", lambda: ray.get(sink.count.remote()) >= load.count, 120)
        rows: list[tuple[int, ...]] = ray.get(sink.take.remote())
        return rows
    finally:
        runtime.shutdown(drain=False)
        ray.kill(sink)


# --- report --------------------------------------------------------------------------------
@dataclass
class Summary:
    name: str
    samples: int
    duplicates: int
    produced_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def summarise(name: str, rows: list[tuple[int, ...]], warmup_s: float) -> Summary:
    start, end = min(row[0] for row in rows), max(row[0] for row in rows)
    cutoff = start + int(warmup_s * 1_000_000)
    earliest: dict[int, tuple[int, ...]] = {}
    for row in rows:  # a redelivered event counts once, at its first arrival
        if row[2] not in earliest or row[1] < earliest[row[2]][1]:
            earliest[row[2]] = row
    kept = earliest.values()
    latencies = sorted((row[1] - row[0]) / 1000 for row in kept if row[0] >= cutoff)
    if not latencies:
        raise ValueError(f"{name}: no samples after the {warmup_s} s warm-up")
    return Summary(
        name,
        len(latencies),
        len(rows) - len(earliest),
        (len(earliest) - 1) / max((end - start) / 1_000_000, 1e-9),
        percentile(latencies, 50),
        percentile(latencies, 99),
        latencies[-1],
    )


def print_hops(rows: list[tuple[int, ...]], warmup_s: float) -> None:
    """Split knray's latency at the broker: ``knativearrivaltime`` is stamped when a
    dispatcher takes the event in (Kafka + source actor before it, delivery after it)."""
    cutoff = min(row[0] for row in rows) + int(warmup_s * 1_000_000)
    kept = [row for row in rows if row[0] >= cutoff and row[3]]
    if not kept:
        return
    hops = {
        "produce -> broker": sorted((row[3] - row[0]) / 1000 for row in kept),
        "broker -> handler": sorted((row[1] - row[3]) / 1000 for row in kept),
    }
    print("knray by hop (knativearrivaltime marks the broker's intake)")
    for name, values in hops.items():
        print(
            f"{name:<20}p50 {percentile(values, 50):>7.1f} ms"
            f"  p99 {percentile(values, 99):>7.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=2000, help="events/s offered")
    parser.add_argument("--seconds", type=float, default=30, help="seconds of load per run")
    parser.add_argument("--warmup", type=float, default=5, help="seconds left out at the start")
    parser.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        default=None,
        help="aiokafka fetch_max_wait_ms of both consumers (default: 500 on apache, 10 on tansu)",
    )
    add_kafka_option(parser)
    args = parser.parse_args()
    if args.fetch_max_wait_ms is None:
        args.fetch_max_wait_ms = fetch_max_wait_ms(args.kafka)
    print(
        f"reproduce: python bench/latency.py --rate {args.rate:g} --seconds {args.seconds:g} "
        f"--warmup {args.warmup:g} --fetch-max-wait-ms {args.fetch_max_wait_ms} "
        f"--kafka {args.kafka}",
        flush=True,
    )
    os.chdir(ROOT)  # Serve replicas import the handler from the current directory
    count = int(args.rate * args.seconds)
    wait = args.fetch_max_wait_ms
    with start_bench_kafka(args.kafka) as kafka:
        bootstrap = kafka.bootstrap
        topics = {"raw": "lat-raw", "knray": "lat-knray"}
        asyncio.run(create_topics(bootstrap, topics.values(), partitions=PARTITIONS))
        # Ray first, so both runs share a machine with Ray's own processes running.
        connect(None, log_to_driver=False)
        print(f"raw: {count} events at {args.rate:g}/s ...", flush=True)
        raw = summarise(
            "raw", run_raw(Load(bootstrap, topics["raw"], args.rate, count, wait)), args.warmup
        )
        print(f"knray: {count} events at {args.rate:g}/s ...", flush=True)
        knray_rows = run_knray(Load(bootstrap, topics["knray"], args.rate, count, wait))
        knray = summarise("knray", knray_rows, args.warmup)
        ray.shutdown()
    print()
    print(f"produce -> handler entry, {args.warmup:g} s warm-up excluded")
    print(
        f"{'run':<8}{'produced/s':>12}{'samples':>10}{'dupes':>7}"
        f"{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"
    )
    for s in (raw, knray):
        print(
            f"{s.name:<8}{s.produced_per_s:>12,.0f}{s.samples:>10}{s.duplicates:>7}"
            f"{s.p50_ms:>10.1f}{s.p99_ms:>10.1f}{s.max_ms:>10.1f}"
        )
    print()
    print_hops(knray_rows, args.warmup)
    print()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end (1, 5, 15 min; {os.cpu_count()} CPUs): {load}")
    print(f"knray p99 - raw p99: {knray.p99_ms - raw.p99_ms:.1f} ms")


if __name__ == "__main__":
    main()

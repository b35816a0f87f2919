"""Throughput of knray against the raw Kafka consumer and a naive one-call-per-event design.

Run: python bench/throughput.py [--events 200000] [--naive-events N] [--kafka apache|tansu]

One run, one broker (Apache Kafka unless ``--kafka tansu``; it prints which), the same
events (about 200 bytes each, binary-mode CloudEvents):
- raw:    an aiokafka consumer alone, reading and committing (the ceiling);
- naive:  a consumer awaiting one Serve handle call per event (what a user would hand-write);
- knray:  KafkaSource -> Broker -> one Trigger with a CESQL filter -> no-op Serve handler;
- fanout: the same with 100 Triggers, 10 of them matching each event.
The last line is ``knray/raw throughput ratio: R``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray
from aiokafka import AIOKafkaConsumer
from ray import serve

from bench.pipeline import CpuMeter, add_kafka_option, kafka_to_broker, start_bench_kafka
from knray import CloudEvent
from knray.errors import ManifestWarning
from knray.manifests import parse_manifests
from knray.runtime import Runtime, connect
from knray.testing.kafka import create_topics, produce_events

PARTITIONS = 4
KINDS = 10  # event types; with 100 triggers, 10 match each event


def make_events(count: int) -> list[CloudEvent]:
    """``count`` events of about 200 bytes on the wire (headers + body)."""
    return [
        CloudEvent(
            {
                "specversion": "1.0",
                "id": f"e{n}",
                "source": "/bench",
                "type": f"com.example.kind{n % KINDS}",
                "datacontenttype": "application/json",
            },
            {"n": n, "user": f"u{n % 997}", "text": "benchmark payload ...."},
        )
        for n in range(count)
    ]


async def raw_consume(bootstrap: str, topic: str, count: int) -> float:
    """Seconds for a plain aiokafka consumer to read and commit ``count`` records."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            seen += sum(len(records) for records in batches.values())
            if batches:
                await consumer.commit()
        return time.perf_counter() - started
    finally:
        await consumer.stop()


@serve.deployment(max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.1})
class NoopDeployment:
    async def __call__(self, event: CloudEvent) -> None:
        return None


async def naive_consume(bootstrap: str, topic: str, count: int) -> float:
    """Seconds for a consumer awaiting one Serve call per event, committing per batch."""
    handle = serve.run(NoopDeployment.bind(), name="bench-naive", route_prefix=None)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"naive-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                for record in records:
                    if seen >= count:
                        break
                    await handle.remote(record.value)
                    seen += 1
            if batches:
                await consumer.commit()
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        serve.delete("bench-naive")


def manifests(topic: str, bootstrap: str, triggers: int, namespace: str) -> str:
    docs = [
        f"""
{kafka_to_broker(namespace, topic, bootstrap)}---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: noop, namespace: {namespace}}}
spec:
  template:
    metadata:
      annotations:
        knray.dev/handler: bench.handlers.noop:noop_async
        autoscaling.knative.dev/min-scale: "1"
        autoscaling.knative.dev/max-scale: "1"
"""
    ]
    for index in range(triggers):
        # One trigger: a CESQL filter matching every event. Many: trigger i matches kind i % 10.
        expression = (
            "type LIKE 'com.example.%' AND source = '/bench'"
            if triggers == 1
            else f"type = 'com.example.kind{index % KINDS}' AND source = '/bench'"
        )
        docs.append(
            f"""
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: t{index}, namespace: {namespace}}}
spec:
  broker: bench
  filters: [{{cesql: "{expression}"}}]
  subscriber: {{ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: noop}}}}
"""
        )
    return "---".join(docs)


def knray_consume(
    bootstrap: str,
    topic: str,
    count: int,
    triggers: int,
    meter: CpuMeter,
    *,
    dispatchers: int = 1,
) -> float:
    """Seconds from the source's first consumed event until all ``count`` are finished;
    ``meter`` measures the CPU spent meanwhile."""
    namespace = f"bench{triggers}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        resources = list(
            parse_manifests(manifests(topic, bootstrap, triggers, namespace)).resources
        )
    runtime = Runtime(
        dispatchers_per_broker=dispatchers,
        consumer_options={"consumer_options": {"max_poll_records": 2000}},
    )
    runtime.apply(resources)
    # Poll the consumer actor alone: Runtime.status() also asks Serve and every dispatcher,
    # which would load the machine being measured.
    source = ray.get_actor(f"source:KafkaSource/{namespace}/bench:0", namespace="knray")
    try:
        started: float | None = None
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            stats = ray.get(source.stats.remote())
            if started is None and stats.get("consumed", 0) > 0:
                started = time.perf_counter()
                meter.start()
            if stats.get("finished", 0) >= count:
                assert started is not None
                elapsed = time.perf_counter() - started
                meter.stop()
                broker = ray.get_actor(f"broker:{namespace}/bench:0", namespace="knray")
                totals = ray.get(broker.stats.remote())["totals"]
                print(
                    f"  {totals['received'] / max(totals['batches'], 1):.0f} events per batch "
                    "entering the broker",
                    flush=True,
                )
                return elapsed
            time.sleep(0.1)
        raise TimeoutError(f"knray did not finish {count} events: {stats}")
    finally:
        runtime.shutdown(drain=False)


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    cpu: CpuMeter | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--naive-events", type=int, default=None, help="events for the naive run (default: all)"
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["naive", "fanout"])
    add_kafka_option(parser)
    args = parser.parse_args()
    count = args.events
    events = make_events(count)
    with start_bench_kafka(args.kafka) as kafka:
        bootstrap = kafka.bootstrap
        topic = "bench-events"
        asyncio.run(create_topics(bootstrap, [topic], partitions=PARTITIONS))
        print(f"producing {count} events ...", flush=True)
        asyncio.run(produce_events(bootstrap, [(topic, e) for e in events]))
        raw_meter = CpuMeter()
        raw_meter.start()
        raw_seconds = asyncio.run(raw_consume(bootstrap, topic, count))
        raw_meter.stop()
        results = [Result("raw", count, raw_seconds, raw_meter)]
        print(f"raw: {results[-1].rate:,.0f} events/s", flush=True)
        connect(None, log_to_driver=False)
        if "naive" not in args.skip:
            naive = min(args.naive_events or count, count)
            results.append(
                Result("naive", naive, asyncio.run(naive_consume(bootstrap, topic, naive)))
            )
            print(f"naive: {results[-1].rate:,.0f} events/s", flush=True)
        meter = CpuMeter()
        results.append(
            Result("knray", count, knray_consume(bootstrap, topic, count, 1, meter), meter)
        )
        print(f"knray: {results[-1].rate:,.0f} events/s", flush=True)
        if "fanout" not in args.skip:
            meter = CpuMeter()
            seconds = knray_consume(bootstrap, topic, count, 100, meter)
            results.append(Result("fanout", count, seconds, meter))
            print(f"fanout: {results[-1].rate:,.0f} events/s", flush=True)
        ray.shutdown()
    by_name = {r.name: r for r in results}
    raw, knray = by_name["raw"], by_name["knray"]
    print()
    print(f"{'run':<8}{'events':>10}{'seconds':>10}{'events/s':>12}")
    for r in results:
        print(f"{r.name:<8}{r.events:>10}{r.seconds:>10.2f}{r.rate:>12,.0f}")
    print()
    print("CPU per event (µs; all processes of the run, busiest first; raw runs in this one)")
    for r in results:
        if r.cpu is not None:
            print(f"{r.name}:")
            print(r.cpu.per_event_table(r.events))
    print()
    if "naive" in by_name:
        print(f"knray/naive throughput ratio: {knray.rate / by_name['naive'].rate:.2f}")
    if "fanout" in by_name:
        loss_one = 1 - knray.rate / raw.rate
        loss_fanout = 1 - by_name["fanout"].rate / raw.rate
        print(f"fanout/knray throughput loss ratio: {loss_fanout / loss_one:.2f}")
    print(f"knray/raw throughput ratio: {knray.rate / raw.rate:.2f}")


if __name__ == "__main__":
    main()

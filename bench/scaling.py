"""Autoscaling of a Knative Service on knray: cold start, scale-up under a burst, back to zero.

Run: python bench/scaling.py [--idle 10] [--rate 500] [--burst 20] [--tail 60]
                             [--container-concurrency 20] [--kafka apache|tansu]

KafkaSource -> Broker -> one Trigger -> a Service whose sync handler sleeps 50 ms
(``bench.handlers.timing:sleep_50ms``), min-scale 0, initial-scale 0, target 10 at 70%,
containerConcurrency 20. The run is: ``--idle`` seconds at zero replicas, a burst of ``--rate``
events/s for ``--burst`` seconds, then idle until the Service is back at zero replicas (at most
``--tail`` seconds). ``runtime.status()`` is sampled every 0.5 s (replicas RUNNING, events in
flight in the source); the handler records produce, entry and exit time of each event.
Writes ``docs/scaling.png``: events/s delivered and replicas over time, burst shaded.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import math
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib as mpl
import ray
from ray import serve

mpl.use("Agg")
import matplotlib.pyplot as plt

from bench.handlers.timing import SINK_ACTOR, SINK_NAMESPACE, stamped_events
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
FIGURE = ROOT / "docs" / "scaling.png"
PARTITIONS = 4
NAMESPACE = "benchscale"
SOURCE_KEY = f"KafkaSource/{NAMESPACE}/bench"
SERVICE_KEY = f"{NAMESPACE}/sleepy"
TRIGGER_SUFFIX = "/all"
SAMPLE_S = 0.5
HANDLER_S = 0.05

# Short windows so the run ends within about a minute after the burst.
ANNOTATIONS = {
    "min-scale": "0",
    "max-scale": "10",
    "initial-scale": "0",
    "target": "10",
    "target-utilization-percentage": "70",
    "window": "10s",
    "scale-down-delay": "5s",
    "scale-to-zero-pod-retention-period": "5s",
}
# A replica runs as many sync handler calls at once as containerConcurrency (its thread pool;
# without it, 16 threads). 20 leaves room above the target of 10, and the subscriber then keeps
# at most 20 x running replicas events in replicas, so a backlog waits in the broker instead of
# flooding the first replica (which would make the policy jump to max-scale). Measured: with 0
# (16 threads, no cap) one replica got the whole backlog and delivery was slower (130 vs 210-300
# events/s in the burst).
DEFAULT_CONTAINER_CONCURRENCY = 20


def manifests(topic: str, bootstrap: str, concurrency: int) -> str:
    annotations = "\n".join(
        f'        autoscaling.knative.dev/{name}: "{value}"' for name, value in ANNOTATIONS.items()
    )
    return f"""
{kafka_to_broker(NAMESPACE, topic, bootstrap)}---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: sleepy, namespace: {NAMESPACE}}}
spec:
  template:
    metadata:
      annotations:
        knray.dev/handler: bench.handlers.timing:sleep_50ms
{annotations}
    spec:
      containerConcurrency: {concurrency}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: all, namespace: {NAMESPACE}}}
spec:
  broker: bench
  subscriber: {{ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: sleepy}}}}
"""


@dataclass
class Sample:
    at: float  # time.time()
    replicas: int
    desired: int  # the autoscaler's target (Serve's target_num_replicas)
    in_flight: int  # consumed by the source, not finished
    lag: int
    delivered: int


@dataclass
class Burst:
    """The producer's thread: idle, then the burst; times are ``time.time()``."""

    bootstrap: str
    topic: str
    idle_s: float
    rate: float
    count: int
    started: float | None = None
    ended: float | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            time.sleep(self.idle_s)
            self.started = time.time()
            events = stamped_events(self.topic, self.count, "com.example.burst")
            asyncio.run(produce_events(self.bootstrap, events, rate_per_s=self.rate))
            self.ended = time.time()
        except BaseException as error:
            self.error = error
        finally:
            self.done.set()


def desired_replicas() -> int:
    """What the autoscaling policy asks for now: Serve's ``target_num_replicas`` (read from
    the controller, as Serve's REST API does; 0 when the application is not there yet)."""
    try:
        controller = serve.context._get_global_client()._controller
        details = ray.get(controller.get_serve_instance_details.remote())
        application = details["applications"][SERVICE_KEY.replace("/", ".")]
        return sum(int(d["target_num_replicas"]) for d in application["deployments"].values())
    except Exception:
        return 0


def sample(runtime: Runtime) -> Sample:
    status = runtime.status()
    source = status["sources"].get(SOURCE_KEY, {})
    trigger = next((c for k, c in status["triggers"].items() if k.endswith(TRIGGER_SUFFIX)), {})
    return Sample(
        at=time.time(),
        replicas=status["services"].get(SERVICE_KEY, {}).get("replicas", 0),
        desired=desired_replicas(),
        in_flight=source.get("in_flight", 0),
        lag=source.get("lag", 0),
        delivered=trigger.get("delivered", 0),
    )


def run(
    args: argparse.Namespace, bootstrap: str, topic: str
) -> tuple[list[Sample], list[tuple[int, ...]]]:
    sink = Sink.options(name=SINK_ACTOR, namespace=SINK_NAMESPACE).remote()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        resources = list(
            parse_manifests(manifests(topic, bootstrap, args.container_concurrency)).resources
        )
    runtime = Runtime(
        consumer_options={"consumer_options": {"fetch_max_wait_ms": fetch_max_wait_ms(args.kafka)}}
    )
    runtime.apply(resources)
    consumer = ray.get_actor(source_actor_name(SOURCE_KEY, 0), namespace=RAY_NAMESPACE)
    count = int(args.rate * args.burst)
    burst = Burst(bootstrap, topic, args.idle, args.rate, count)
    samples: list[Sample] = []
    try:
        wait_for("partition assignment", lambda: ray.get(consumer.stats.remote())["assigned"], 60)
        wait_for("zero replicas", lambda: sample(runtime).replicas == 0, 60)
        producer = threading.Thread(target=burst.run, name="producer", daemon=True)
        began = time.monotonic()
        producer.start()
        deadline = began + args.idle + args.burst + args.tail + 30
        tick = 0
        while time.monotonic() < deadline:
            samples.append(sample(runtime))
            if burst.error is not None:
                raise burst.error
            latest = samples[-1]
            if (
                burst.done.is_set()
                and latest.delivered >= count
                and latest.replicas == 0
                and latest.at - (burst.ended or latest.at) > 2
            ):
                break
            if burst.ended is not None and latest.at > burst.ended + args.tail:
                break
            tick += 1
            time.sleep(max(0.0, began + tick * SAMPLE_S - time.monotonic()))
        wait_for("the last rows", lambda: ray.get(sink.count.remote()) >= count, 10)
        rows: list[tuple[int, ...]] = ray.get(sink.take.remote())
        return samples, rows
    finally:
        runtime.shutdown(drain=False)
        ray.kill(sink)


# --- report --------------------------------------------------------------------------------


def first(samples: list[Sample], after: float, check: Any) -> Sample | None:
    return next((s for s in samples if s.at >= after and check(s)), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle", type=float, default=10, help="seconds at zero before the burst")
    parser.add_argument("--rate", type=float, default=500, help="events/s during the burst")
    parser.add_argument("--burst", type=float, default=20, help="seconds of burst")
    parser.add_argument(
        "--tail", type=float, default=60, help="max seconds after the burst to wait for zero"
    )
    parser.add_argument(
        "--container-concurrency",
        type=int,
        default=DEFAULT_CONTAINER_CONCURRENCY,
        help="the Service's containerConcurrency (0: unbounded, 16 handler threads)",
    )
    add_kafka_option(parser)
    args = parser.parse_args()
    print(
        f"reproduce: python bench/scaling.py --idle {args.idle:g} --rate {args.rate:g} "
        f"--burst {args.burst:g} --tail {args.tail:g} "
        f"--container-concurrency {args.container_concurrency} --kafka {args.kafka}",
        flush=True,
    )
    os.chdir(ROOT)  # Serve replicas import the handler from the current directory
    target = float(ANNOTATIONS["target"]) * float(ANNOTATIONS["target-utilization-percentage"])
    needed = math.ceil(args.rate * HANDLER_S / (target / 100))
    print("annotations (autoscaling.knative.dev/):")
    for name, value in ANNOTATIONS.items():
        print(f"  {name}: {value}")
    print(
        f"  containerConcurrency: {args.container_concurrency} "
        f"(handler threads per replica: {args.container_concurrency or 16}); "
        f"KafkaSource fetch_max_wait_ms: {fetch_max_wait_ms(args.kafka)}"
    )
    print(
        f"needed replicas: {args.rate:g} ev/s x {HANDLER_S} s = {args.rate * HANDLER_S:g} in "
        f"flight / ({ANNOTATIONS['target']} x {ANNOTATIONS['target-utilization-percentage']}%)"
        f" = {needed}",
        flush=True,
    )
    with start_bench_kafka(args.kafka) as kafka:
        topic = "scale-events"
        asyncio.run(create_topics(kafka.bootstrap, [topic], partitions=PARTITIONS))
        connect(None, log_to_driver=False)
        samples, rows = run(args, kafka.bootstrap, topic)
        ray.shutdown()
    report(args, samples, rows, needed)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end (1, 5, 15 min; {os.cpu_count()} CPUs): {load}")


@dataclass
class Series:
    """Per sample interval, in seconds since the first produced event."""

    times: list[float]  # sample times
    mids: list[float]  # interval midpoints
    delivered_rate: list[float]  # handler completions per second in the interval
    running: list[float]  # average events inside the handler over the interval
    burst_s: float


def _rates(rows: list[tuple[int, ...]], edges: list[float]) -> tuple[list[float], list[float]]:
    """Completions per second and average events in the handler, per interval of ``edges``."""
    finished = sorted(r[2] / 1e6 for r in rows)
    spans = sorted((r[1] / 1e6, r[2] / 1e6) for r in rows)
    delivered: list[float] = []
    running: list[float] = []
    for left, right in itertools.pairwise(edges):
        count = bisect.bisect_left(finished, right) - bisect.bisect_left(finished, left)
        delivered.append(count / (right - left))
        # spans are short (50 ms): only those entered shortly before the interval overlap it
        low = bisect.bisect_left(spans, (left - 5.0,))
        high = bisect.bisect_left(spans, (right,))
        busy = sum(max(0.0, min(b, right) - max(a, left)) for a, b in spans[low:high])
        running.append(busy / (right - left))
    return delivered, running


def series(samples: list[Sample], rows: list[tuple[int, ...]], start: float, end: float) -> Series:
    edges = [s.at for s in samples]
    delivered_rate, running = _rates(rows, edges)
    times = [t - start for t in edges]
    mids = [(a + b) / 2 for a, b in itertools.pairwise(times)]
    return Series(times, mids, delivered_rate, running, end - start)


def report(
    args: argparse.Namespace, samples: list[Sample], rows: list[tuple[int, ...]], needed: int
) -> None:
    produced = sorted(r[0] / 1e6 for r in rows)
    entered = sorted(r[1] / 1e6 for r in rows)
    finished = sorted(r[2] / 1e6 for r in rows)
    start = produced[0]  # the first produced event
    end = produced[-1]  # the last produced event
    reached = first(samples, start, lambda s: s.replicas >= needed)
    asked_more = first(samples, start, lambda s: s.desired > 1)
    second = first(samples, start, lambda s: s.replicas > 1)
    peak = max(samples, key=lambda s: s.replicas)
    zero = first(samples, finished[-1], lambda s: s.replicas == 0)
    waits = sorted((r[1] - r[0]) / 1000 for r in rows)
    handler = sorted((r[2] - r[1]) / 1000 for r in rows)
    data = series(samples, rows, start, end)
    gaps = [b.at - a.at for a, b in itertools.pairwise(samples)]

    print()
    print(f"timeline (t = 0 at the first produced event; burst until t = {end - start:.1f} s)")
    print(
        f"{'t s':>6}{'replicas':>10}{'asked':>7}{'in flight':>11}{'in handler':>12}"
        f"{'delivered/s':>13}"
        "   (in flight: consumed, not finished; the last two: averages to the next row)"
    )
    rows_at = [0]
    for index, sample in enumerate(samples):
        if sample.at - samples[rows_at[-1]].at >= 2.0 - SAMPLE_S / 2:
            rows_at.append(index)
    for a, b in itertools.pairwise(rows_at):
        s = samples[a]
        delivered, running = _rates(rows, [s.at, samples[b].at])
        print(
            f"{s.at - start:>6.1f}{s.replicas:>10}{s.desired:>7}{s.in_flight:>11}"
            f"{running[0]:>12.1f}{delivered[0]:>13.0f}"
        )
    last = samples[-1]
    print(f"{last.at - start:>6.1f}{last.replicas:>10}{last.desired:>7}{last.in_flight:>11}")
    print()
    print(
        f"events: {len(rows)} handled, produced at {(len(rows) - 1) / (end - start):.0f}/s; "
        f"handler time p50 {percentile(handler, 50):.0f} ms, p99 {percentile(handler, 99):.0f} ms"
    )
    print(
        f"status samples: {len(samples)}, every {SAMPLE_S} s asked, largest gap {max(gaps):.1f} s"
    )
    print(f"cold start, first produced -> first handler entry: {entered[0] - start:.2f} s")
    print(
        f"cold start, first produced -> first delivered (handler done): {finished[0] - start:.2f} s"
    )
    for label, found in (
        ("the autoscaler asks for more than 1 replica", asked_more),
        ("a second replica RUNNING", second),
    ):
        when = "never" if found is None else f"{found.at - start:.1f} s"
        print(f"first produced -> {label}: {when}")
    if reached is None:
        print(f"replicas never reached {needed}")
    else:
        print(f"first produced -> {needed} replicas RUNNING: {reached.at - start:.1f} s")
    print(f"peak replicas: {peak.replicas} at t = {peak.at - start:.1f} s")
    for left in (0.0, 10.0):
        right = min(left + 10.0, end - start)
        delivered, _ = _rates(rows, [start + left, start + right])
        print(f"delivered t = {left:.0f}..{right:.0f} s: {delivered[0]:.0f} events/s")
    print(f"last delivery: t = {finished[-1] - start:.1f} s")
    print(
        f"produce -> handler entry, all events: p50 {percentile(waits, 50):.0f} ms, "
        f"p99 {percentile(waits, 99):.0f} ms"
    )
    if zero is None:
        print(f"replicas did not return to zero within {args.tail:g} s")
    else:
        print(
            f"back to zero replicas: {zero.at - finished[-1]:.1f} s after the last delivery "
            f"({zero.at - end:.1f} s after the last produced event)"
        )
    plot(samples, data, needed, args.rate)
    print(f"figure: {FIGURE.relative_to(ROOT)}")


def plot(samples: list[Sample], data: Series, needed: int, rate: float) -> None:
    figure, (top, middle, bottom) = plt.subplots(
        3, 1, sharex=True, figsize=(9, 7.5), height_ratios=(3, 2, 2)
    )
    top.step(data.mids, data.delivered_rate, where="mid", color="tab:blue", label="delivered")
    top.hlines(rate, 0, data.burst_s, color="tab:orange", linestyle="--", label="produced")
    top.set_ylabel("events/s")
    top.legend(loc="upper right")
    middle.step(
        data.times, [s.replicas for s in samples], where="post", color="tab:red", label="RUNNING"
    )
    middle.step(
        data.times,
        [s.desired for s in samples],
        where="post",
        color="tab:purple",
        linestyle="--",
        label="asked for",
    )
    middle.axhline(needed, color="tab:red", linestyle=":", label=f"needed ({needed})")
    middle.set_ylabel("replicas")
    middle.legend(loc="upper right")
    bottom.plot(data.times, [s.in_flight for s in samples], color="tab:gray", label="source (left)")
    bottom.set_ylabel("in flight: source")
    inside = bottom.twinx()
    inside.step(
        data.mids, data.running, where="mid", color="tab:green", label="in handlers (right)"
    )
    inside.set_ylabel("in handlers (avg)")
    lines = bottom.get_legend_handles_labels()
    more = inside.get_legend_handles_labels()
    bottom.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right")
    bottom.set_xlabel("seconds since the first produced event (burst shaded)")
    for axis in (top, middle, bottom):
        axis.axvspan(0, data.burst_s, color="orange", alpha=0.15)
        axis.grid(alpha=0.3)
    top.set_title("knray: 50 ms handler, burst from zero replicas and back")
    figure.tight_layout()
    FIGURE.parent.mkdir(exist_ok=True)
    figure.savefig(FIGURE, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()

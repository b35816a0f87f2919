"""The demo: embedded Kafka (Tansu) + local Ray + the live-chat AI scenario from configs/."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from knray.demo.livechat import GIFTS_TOPIC, MESSAGES_TOPIC, ChatTraffic
from knray.errors import ManifestWarning
from knray.events import CloudEvent
from knray.filters import compile_trigger
from knray.manifests import KafkaSource, KnativeService, Resource, Trigger, load_manifests
from knray.runtime import Runtime, connect
from knray.runtime.status_view import StatusDisplay, render_status
from knray.testing.kafka import create_topics, produce_events, start_tansu

__all__ = ["DemoOptions", "DemoSummary", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    """How much traffic the demo produces, and how long it waits."""

    config: Path = Path("configs/live-chat")
    steady_events: int = 1500
    steady_rate_per_s: float = 150.0
    burst_events: int = 2500
    partitions: int = 4
    settle_timeout_s: float = 180.0
    scale_down_timeout_s: float = 90.0


@dataclass
class DemoSummary:
    """What the demo measured; ``lost`` must be 0."""

    produced: int = 0
    finished: int = 0
    consumed: int = 0
    expected: dict[str, int] = field(default_factory=dict)
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)
    peak_replicas: dict[str, int] = field(default_factory=dict)
    final_replicas: dict[str, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        dropped = sum(
            int(t.get("dropped", 0)) + int(t.get("failed", 0)) for t in self.triggers.values()
        )
        return max(0, self.produced - self.finished) + dropped

    @property
    def duplicates(self) -> int:
        """Records consumed more than once (at-least-once redelivery after a restart)."""
        return max(0, self.consumed - self.produced)


def _overrides(resources: list[Resource]) -> dict[str, str]:
    extensions: dict[str, str] = {}
    for resource in resources:
        if isinstance(resource, KafkaSource) and resource.spec.ce_overrides is not None:
            extensions.update(resource.spec.ce_overrides.extensions)
    return extensions


def _expected_matches(resources: list[Resource], events: list[CloudEvent]) -> dict[str, int]:
    """How many produced events each Trigger should receive, by running its filter here."""
    extensions = _overrides(resources)
    filters = {r.key: compile_trigger(r) for r in resources if isinstance(r, Trigger)}
    counts: Counter[str] = Counter()
    for event in events:
        seen = event.evolve(extensions) if extensions else event
        for key, compiled in filters.items():
            if compiled.match(seen):
                counts[key] += 1
    return {key: counts.get(key, 0) for key in filters}


def _header(phase: str, produced: int, summary: DemoSummary) -> Text:
    return Text.assemble(
        ("knray demo", "bold"),
        f"  phase: {phase}  produced: {produced}  finished at source: {summary.finished}",
    )


def run_demo(options: DemoOptions, console: Console) -> DemoSummary:
    """Run the whole demo; returns the summary (the CLI prints it and sets the exit code)."""
    warnings.simplefilter("ignore", ManifestWarning)
    resources = load_manifests(options.config)
    summary = DemoSummary()
    traffic = ChatTraffic()
    steady = list(traffic.events(options.steady_events))
    burst = list(traffic.events(options.burst_events, start=options.steady_events))
    produced_events = [event for _, event in steady + burst]
    summary.expected = _expected_matches(resources, produced_events)

    console.print("starting the embedded Kafka broker (Tansu) and a local Ray ...")
    with start_tansu() as tansu:
        topics = [MESSAGES_TOPIC, GIFTS_TOPIC]
        asyncio.run(create_topics(tansu.bootstrap, topics, partitions=options.partitions))
        resources = _point_sources_at(resources, tansu.bootstrap)
        # The live table is the show; actors' logs stay in Ray's log files.
        connect(None, log_to_driver=False)
        runtime = Runtime()
        try:
            runtime.apply(resources)
            traffic_run = _Traffic(tansu.bootstrap, steady, burst, options.steady_rate_per_s)
            _drive(
                runtime, resources, traffic_run, options=options, summary=summary, console=console
            )
        finally:
            final = runtime.shutdown(drain=True)
            _absorb(final, summary)
    return summary


def _point_sources_at(resources: list[Resource], bootstrap: str) -> list[Resource]:
    result: list[Resource] = []
    for resource in resources:
        if isinstance(resource, KafkaSource):
            spec = resource.spec.model_copy(update={"bootstrap_servers": [bootstrap]})
            result.append(resource.model_copy(update={"spec": spec}))
        else:
            result.append(resource)
    return result


def _absorb(status: dict[str, Any], summary: DemoSummary) -> None:
    sources = status.get("sources", {})
    if sources:
        summary.finished = sum(int(s.get("finished", 0)) for s in sources.values())
        summary.consumed = sum(int(s.get("consumed", 0)) for s in sources.values())
    if status.get("triggers"):
        summary.triggers = status["triggers"]
    for key, service in status.get("services", {}).items():
        replicas = int(service.get("replicas", 0))
        summary.peak_replicas[key] = max(summary.peak_replicas.get(key, 0), replicas)
        summary.final_replicas[key] = replicas


@dataclass
class _Traffic:
    """The demo's producer, run in a thread while the main thread shows the live status."""

    bootstrap: str
    steady: list[tuple[str, CloudEvent]]
    burst: list[tuple[str, CloudEvent]]
    steady_rate_per_s: float
    phase: str = "steady traffic"
    produced: int = 0
    error: BaseException | None = None

    def run(self) -> None:
        try:
            self.produced += asyncio.run(
                produce_events(self.bootstrap, self.steady, rate_per_s=self.steady_rate_per_s)
            )
            self.phase = "burst"
            self.produced += asyncio.run(produce_events(self.bootstrap, self.burst))
            self.phase = "draining"
        except BaseException as error:  # re-raised by the main thread
            self.error = error
            self.phase = "producer failed"


def _drive(
    runtime: Runtime,
    resources: list[Resource],
    traffic: _Traffic,
    *,
    options: DemoOptions,
    summary: DemoSummary,
    console: Console,
) -> None:
    producer = threading.Thread(target=traffic.run, name="demo-producer", daemon=True)
    producer.start()
    total = len(traffic.steady) + len(traffic.burst)

    def view() -> Group:
        status = runtime.status()
        _absorb(status, summary)
        return Group(_header(traffic.phase, traffic.produced, summary), render_status(status))

    with StatusDisplay(console, view) as display:
        _until(
            lambda: not producer.is_alive() and summary.finished >= total,
            options.settle_timeout_s,
            display,
        )
        summary.produced = traffic.produced
        traffic.phase = "quiet: waiting for scale-down"
        scale_to_zero = [
            f"{r.namespace}/{r.name}"
            for r in resources
            if isinstance(r, KnativeService) and r.autoscaling.min_scale == 0
        ]
        _until(
            lambda: all(summary.final_replicas.get(k, 0) == 0 for k in scale_to_zero),
            options.scale_down_timeout_s,
            display,
        )
    if traffic.error is not None:
        raise traffic.error


def _until(done: Callable[[], bool], timeout_s: float, display: StatusDisplay) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        display.refresh()
        if done():
            return True
        time.sleep(0.5)
    return False


def summary_table(summary: DemoSummary) -> Table:
    """The closing table: per trigger expected (from the produced events) and delivered."""
    table = Table(title="summary", title_justify="left")
    for column in ("trigger", "expected", "delivered", "dead-lettered", "dropped", "retries"):
        table.add_column(column, justify="left" if column == "trigger" else "right")
    for key, counters in sorted(summary.triggers.items()):
        expected = summary.expected.get(key)
        table.add_row(
            key.rsplit("/", 1)[-1],
            "replies" if not expected else str(expected),
            str(counters.get("delivered", 0)),
            str(counters.get("dead_lettered", 0)),
            str(counters.get("dropped", 0) + counters.get("failed", 0)),
            str(counters.get("retries", 0)),
        )
    return table

"""Samples of a running system over time, and the series plotted from them (pure)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from knray.interactive.rows import Rows

__all__ = ["History", "Sample", "short_name"]


@dataclass(frozen=True)
class Sample:
    """One look at the system: seconds since the session started, events delivered so far
    per trigger, running replicas per service."""

    elapsed_s: float
    delivered: Mapping[str, int]
    replicas: Mapping[str, int]


def short_name(key: str) -> str:
    """``Trigger/default/moderate`` or ``default/moderate`` -> ``moderate``."""
    return key.rsplit("/", 1)[-1]


class History:
    """The last ``limit`` samples (bounded memory for sessions left running)."""

    def __init__(self, limit: int = 3600) -> None:
        self._samples: deque[Sample] = deque(maxlen=limit)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, elapsed_s: float, status: Mapping[str, Any]) -> None:
        """Record a :meth:`Runtime.status` result taken ``elapsed_s`` into the session."""
        delivered = {
            key: int(counters.get("delivered", 0))
            for key, counters in (status.get("triggers") or {}).items()
        }
        replicas = {
            key: int(service.get("replicas", 0))
            for key, service in (status.get("services") or {}).items()
        }
        self._samples.append(Sample(elapsed_s, delivered, replicas))

    def rows(self) -> Rows:
        """Long format, one row per sample and series: ``elapsed_s``, ``kind`` (trigger or
        service), ``name``, ``metric`` (``delivered_per_s`` or ``replicas``), ``value``.
        Throughput is the change of a trigger's delivered count since the previous sample."""
        rows = Rows()
        previous: Sample | None = None
        for sample in self._samples:
            if previous is not None and sample.elapsed_s > previous.elapsed_s:
                span = sample.elapsed_s - previous.elapsed_s
                for key, count in sorted(sample.delivered.items()):
                    # A counter that went down was reset (Broker re-created): count from zero.
                    before = previous.delivered.get(key, 0)
                    change = count - before if count >= before else count
                    rows.append(
                        {
                            "elapsed_s": round(sample.elapsed_s, 3),
                            "kind": "trigger",
                            "name": short_name(key),
                            "metric": "delivered_per_s",
                            "value": change / span,
                        }
                    )
            for key, replicas in sorted(sample.replicas.items()):
                rows.append(
                    {
                        "elapsed_s": round(sample.elapsed_s, 3),
                        "kind": "service",
                        "name": short_name(key),
                        "metric": "replicas",
                        "value": float(replicas),
                    }
                )
            previous = sample
        return rows

    def series(self, metric: str) -> dict[str, tuple[list[float], list[float]]]:
        """``{name: (times, values)}`` of one metric, for plotting."""
        result: dict[str, tuple[list[float], list[float]]] = {}
        for row in self.rows():
            if row["metric"] == metric:
                times, values = result.setdefault(row["name"], ([], []))
                times.append(row["elapsed_s"])
                values.append(row["value"])
        return result

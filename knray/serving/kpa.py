"""Knative's KPA scaling decision as a pure function (standard library only).

Follows knative/serving ``pkg/autoscaler/scaling/autoscaler.go``: averages of events in flight
over a stable and a panic window, panic mode (entered when the panic-window demand reaches the
panic threshold times the ready replicas, left a stable window after the last such tick, never
scaling down meanwhile), max scale-up/down rates, the scale-down delay (the max of the desired
values seen during the delay) and min/max clamping. Scale to zero happens only once zero has been
wanted for the retention period. The state is a JSON-able dict so it fits Serve's policy state.

This module must import nothing but the standard library: the Serve controller runs it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["KpaDecision", "KpaParams", "decide"]

# Knative config-autoscaler defaults.
_MAX_SCALE_UP_RATE = 1000.0
_MAX_SCALE_DOWN_RATE = 2.0
# Keep one sample per this many seconds at most; ticks come every ~0.1 s.
_SAMPLE_SPACING_S = 0.2


@dataclass(frozen=True)
class KpaParams:
    """The Knative settings the decision needs, in events in flight per replica."""

    target_per_replica: float = 70.0  # target x utilisation
    min_scale: int = 0
    max_scale: int = 0  # 0: unbounded
    window_s: float = 60.0
    panic_window_s: float = 6.0
    panic_threshold: float = 2.0  # a ratio: 200% -> 2.0
    scale_down_delay_s: float = 0.0
    retention_s: float = 0.0
    max_scale_up_rate: float = _MAX_SCALE_UP_RATE
    max_scale_down_rate: float = _MAX_SCALE_DOWN_RATE

    def to_dict(self) -> dict[str, Any]:
        """JSON-able keyword arguments (Serve's ``policy_kwargs``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> KpaParams:
        """The inverse of :meth:`to_dict`; unknown keys raise TypeError."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise TypeError(f"unknown KPA parameters: {sorted(unknown)}")
        params = cls(**values)
        if params.target_per_replica <= 0:
            raise ValueError("target_per_replica must be positive")
        return params


@dataclass(frozen=True)
class KpaDecision:
    """The desired replicas, the state to carry to the next tick, and why (for logs/tests)."""

    desired: int
    state: dict[str, Any]
    panicking: bool = False
    held: bool = False
    stable_events: float = 0.0
    panic_events: float = 0.0


def _window_average(samples: list[list[float]], now: float, window_s: float) -> float:
    values = [value for when, value in samples if now - when <= window_s]
    return sum(values) / len(values) if values else 0.0


def decide(
    params: KpaParams,
    state: dict[str, Any] | None,
    *,
    now: float,
    ready_replicas: int,
    current_target: int,
    events_in_flight: float | None,
) -> KpaDecision:
    """One autoscaler tick.

    ``events_in_flight`` is the total over the running replicas, or None when some running
    replica has not reported yet: then the current target is held and the state is unchanged.
    """
    previous = dict(state or {})
    if events_in_flight is None:
        return KpaDecision(desired=current_target, state=previous, held=True)
    samples: list[list[float]] = [list(s) for s in previous.get("samples", [])]
    horizon = max(params.window_s, params.panic_window_s)
    samples = [s for s in samples if now - s[0] <= horizon]
    if not samples or now - samples[-1][0] >= _SAMPLE_SPACING_S:
        samples.append([now, max(0.0, float(events_in_flight))])
    else:  # keep the peak of a short interval so a spike is not lost
        samples[-1][1] = max(samples[-1][1], float(events_in_flight))
    stable = _window_average(samples, now, params.window_s)
    panic = _window_average(samples, now, params.panic_window_s)

    ready = max(1, ready_replicas)
    max_up = math.ceil(ready * params.max_scale_up_rate)
    max_down = math.floor(ready_replicas / params.max_scale_down_rate)
    stable_desired = min(max(math.ceil(stable / params.target_per_replica), max_down), max_up)
    panic_desired = min(max(math.ceil(panic / params.target_per_replica), max_down), max_up)

    panic_since: float | None = previous.get("panic_since")
    max_panic: int = int(previous.get("max_panic", 0))
    over_threshold = panic_desired / ready >= params.panic_threshold
    if over_threshold:
        panic_since = now  # enter panic, or extend it
    elif panic_since is not None and now - panic_since > params.window_s:
        panic_since = None
        max_panic = 0
    if panic_since is not None:
        desired = max(stable_desired, panic_desired, max_panic)  # panic never scales down
        max_panic = desired
    else:
        desired = stable_desired

    history: list[list[float]] = [
        list(h) for h in previous.get("history", []) if now - h[0] < params.scale_down_delay_s
    ]
    if params.scale_down_delay_s > 0:
        history.append([now, float(desired)])
        desired = max(int(h[1]) for h in history)

    zero_since: float | None = previous.get("zero_since")
    if desired == 0:
        zero_since = now if zero_since is None else zero_since
        if now - zero_since < params.retention_s and current_target > 0:
            desired = 1
    else:
        zero_since = None

    desired = max(desired, params.min_scale)
    if params.max_scale > 0:
        desired = min(desired, params.max_scale)
    new_state = {
        "samples": samples,
        "panic_since": panic_since,
        "max_panic": max_panic,
        "history": history,
        "zero_since": zero_since,
    }
    return KpaDecision(
        desired=desired,
        state=new_state,
        panicking=panic_since is not None,
        stable_events=stable,
        panic_events=panic,
    )

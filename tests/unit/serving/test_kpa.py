"""The KPA decision: stable and panic windows, min/max, scale-down delay, retention, and
holding the target until every replica reported."""

from __future__ import annotations

from typing import Any

import pytest

from knray.serving.kpa import KpaParams, decide

PARAMS = KpaParams(target_per_replica=10.0, window_s=60.0, panic_window_s=6.0)


def run(
    params: KpaParams,
    series: list[tuple[float, float | None]],
    *,
    ready: int = 1,
    target: int | None = None,
    follow: bool = True,
) -> tuple[list[int], dict[str, Any]]:
    """Feed (time, events) ticks; the replicas follow the decisions when ``follow``."""
    state: dict[str, Any] | None = None
    decisions: list[int] = []
    current_target = ready if target is None else target
    for now, events in series:
        decision = decide(
            params,
            state,
            now=now,
            ready_replicas=ready,
            current_target=current_target,
            events_in_flight=events,
        )
        state = decision.state
        decisions.append(decision.desired)
        if follow:
            current_target = decision.desired
            ready = decision.desired
    assert state is not None
    return decisions, state


def test_desired_is_events_over_target_times_utilisation() -> None:
    decisions, _ = run(PARAMS, [(0.0, 35.0)], ready=4)
    assert decisions == [4]  # ceil(35 / 10)


def test_stable_window_averages_and_scales_down_gradually() -> None:
    # 40 events for 60 s, then none: the stable average falls as zeros fill the window.
    series = [(t * 1.0, 40.0) for t in range(60)] + [(60.0 + t, 0.0) for t in range(1, 61)]
    decisions, _ = run(PARAMS, series, ready=4)
    assert decisions[59] == 4
    after = decisions[60:]
    assert after == sorted(after, reverse=True)  # never up again
    assert after[-1] == 0


def test_panic_mode_scales_up_fast_and_never_down() -> None:
    # From 1 replica, a sudden 100 events: the panic window sees it before the stable one.
    series = [(t * 1.0, 0.0) for t in range(50)] + [(50.0 + t, 100.0) for t in range(1, 4)]
    decisions, state = run(PARAMS, series, ready=1, follow=False)
    assert decisions[-1] >= 5
    assert state["panic_since"] is not None
    # Load drops but panic holds the peak until a stable window passes without panic.
    peak = decisions[-1]
    decision = decide(
        PARAMS, state, now=60.0, ready_replicas=peak, current_target=peak, events_in_flight=1.0
    )
    assert decision.panicking
    assert decision.desired == peak


def test_panic_exits_after_a_stable_window() -> None:
    state: dict[str, Any] | None = None
    for now, events in [(0.0, 100.0), (1.0, 100.0)]:
        state = decide(
            PARAMS, state, now=now, ready_replicas=1, current_target=1, events_in_flight=events
        ).state
    decision = decide(
        PARAMS, state, now=70.0, ready_replicas=10, current_target=10, events_in_flight=0.0
    )
    assert not decision.panicking


def test_min_and_max_scale_clamp() -> None:
    bounded = KpaParams(target_per_replica=10.0, min_scale=2, max_scale=3)
    assert run(bounded, [(0.0, 1000.0)], ready=3)[0] == [3]
    assert run(bounded, [(0.0, 0.0)], ready=3)[0] == [2]


def test_max_scale_down_rate_halves_at_most() -> None:
    decisions, _ = run(PARAMS, [(0.0, 0.0)], ready=8, follow=False)
    assert decisions == [4]


def test_scale_down_delay_holds_the_recent_maximum() -> None:
    delayed = KpaParams(
        target_per_replica=10.0,
        window_s=6.0,
        panic_window_s=1.0,
        scale_down_delay_s=10.0,
        panic_threshold=10.0,
    )
    series = [(0.0, 40.0), (1.0, 40.0)] + [(1.0 + t, 0.0) for t in range(1, 45)]
    decisions, _ = run(delayed, series, ready=4)
    # The delay keeps 4 for 10 s after the desired value starts falling; each lower value
    # (at most halving, Knative's max scale-down rate) is then held for the delay again.
    assert decisions[:10] == [4] * 10
    assert decisions == sorted(decisions, reverse=True)
    assert decisions[-1] == 0
    assert decisions.index(0) > 30


def test_scale_to_zero_waits_for_the_retention_period() -> None:
    retained = KpaParams(target_per_replica=10.0, window_s=6.0, retention_s=5.0)
    series = [(float(t), 0.0) for t in range(10)]
    decisions, _ = run(retained, series, ready=1)
    assert decisions[:5] == [1] * 5
    assert decisions[5:] == [0] * 5


def test_zero_stays_zero_and_events_restart_it() -> None:
    decisions, _ = run(PARAMS, [(0.0, 0.0), (1.0, 0.0), (2.0, 5.0)], ready=0)
    assert decisions[:2] == [0, 0]
    assert decisions[2] == 1


def test_holds_the_target_until_every_replica_reported() -> None:
    state = decide(
        PARAMS, None, now=0.0, ready_replicas=2, current_target=2, events_in_flight=100.0
    ).state
    held = decide(PARAMS, state, now=1.0, ready_replicas=3, current_target=3, events_in_flight=None)
    assert held.held
    assert held.desired == 3
    assert held.state == state


def test_params_round_trip_and_reject_unknown_keys() -> None:
    assert KpaParams.from_dict(PARAMS.to_dict()) == PARAMS
    with pytest.raises(TypeError, match="nonsense"):
        KpaParams.from_dict({"nonsense": 1})

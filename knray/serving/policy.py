"""knray's Serve autoscaling policy: Knative KPA on the events in flight of each replica.

Runs inside the Serve controller, so it imports only the standard library (and the stdlib-only
:mod:`knray.serving.kpa`, pickled by value together with this module) and never raises: any
error is logged and the current target is held.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from knray.serving.kpa import KpaParams, decide

__all__ = ["EVENTS_IN_FLIGHT", "STATE_KEY", "KnativeAutoscalingPolicy", "events_in_flight"]

EVENTS_IN_FLIGHT = "events_in_flight"
STATE_KEY = "knray_kpa"
_logger = logging.getLogger("ray.serve")
# The controller calls the policy ~10 times a second: log a repeating error at most this often.
_ERROR_LOG_INTERVAL_S = 60.0


def events_in_flight(ctx: Any) -> float | None:
    """The events in flight over the running replicas; None until every one has reported.

    Serve's own count of ongoing requests (each request carries at least one event, and it
    includes calls waiting in handles) is a floor, so calls queued at a cold start count.
    """
    metrics = ctx.aggregated_metrics or {}
    per_replica = metrics.get(EVENTS_IN_FLIGHT, {})
    running = list(ctx.running_replicas or [])
    if any(replica not in per_replica for replica in running):
        return None
    total = float(sum(per_replica[replica] for replica in running))
    requests = float(ctx.total_num_requests or 0.0)
    if math.isnan(total):
        return None
    return max(total, requests)


class KnativeAutoscalingPolicy:
    """A Serve custom autoscaling policy (class form, configured by ``policy_kwargs``)."""

    def __init__(self, **kwargs: Any) -> None:
        self._params: KpaParams | None
        try:
            self._params = KpaParams.from_dict(dict(kwargs))
        except Exception:  # a bad config must not wedge the controller
            _logger.exception("knray policy: bad parameters %r; holding replicas", kwargs)
            self._params = None
        self._error_logged_at = -_ERROR_LOG_INTERVAL_S

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        """Return ``(desired replicas, policy state)`` for one controller tick."""
        try:
            state = dict(ctx.policy_state or {})
            if self._params is None:
                return int(ctx.target_num_replicas), state
            now = ctx.current_time if ctx.current_time is not None else time.time()
            decision = decide(
                self._params,
                state.get(STATE_KEY),
                now=float(now),
                ready_replicas=int(ctx.current_num_replicas),
                current_target=int(ctx.target_num_replicas),
                events_in_flight=events_in_flight(ctx),
            )
            state[STATE_KEY] = decision.state
            return decision.desired, state
        except Exception:
            now = time.monotonic()
            if now - self._error_logged_at >= _ERROR_LOG_INTERVAL_S:
                self._error_logged_at = now
                _logger.exception("knray policy failed; holding the current target")
            try:
                return int(ctx.target_num_replicas), dict(ctx.policy_state or {})
            except Exception:
                return 1, {}

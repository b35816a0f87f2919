"""Knative autoscaling annotations (serving pkg/apis/autoscaling), parsed and checked.

knray counts events in flight where Knative counts requests; the meaning of each annotation is
otherwise Knative's. Both spellings are accepted (``min-scale`` and the older ``minScale``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from knray.manifests.durations import parse_go_duration_s

__all__ = [
    "AUTOSCALING_PREFIX",
    "IMPLEMENTED_AUTOSCALING_KEYS",
    "AutoscalingSpec",
    "autoscaling_from_annotations",
    "parse_autoscaling",
]

AUTOSCALING_PREFIX: Final = "autoscaling.knative.dev/"
KPA_CLASS: Final = "kpa.autoscaling.knative.dev"

# Knative's bounds (serving pkg/apis/autoscaling/annotation_validation.go, config defaults).
_WINDOW_MIN_S: Final = 6.0
_WINDOW_MAX_S: Final = 3600.0
_TARGET_MIN: Final = 0.01

# Canonical key -> older camelCase spelling (Knative accepts both, never both at once).
_ALTERNATES: Final = {
    "min-scale": "minScale",
    "max-scale": "maxScale",
    "initial-scale": "initialScale",
    "target-utilization-percentage": "targetUtilizationPercentage",
    "target-burst-capacity": "targetBurstCapacity",
    "scale-down-delay": "scaleDownDelay",
    "scale-to-zero-pod-retention-period": "scaleToZeroPodRetentionPeriod",
    "panic-window-percentage": "panicWindowPercentage",
    "panic-threshold-percentage": "panicThresholdPercentage",
    "metric-aggregation-algorithm": "metricAggregationAlgorithm",
    "activation-scale": "activationScale",
}
# Keys knray honours (each spelling); any other autoscaling.knative.dev key only warns.
IMPLEMENTED_AUTOSCALING_KEYS: Final = frozenset(
    AUTOSCALING_PREFIX + name
    for canonical in (
        "class",
        "metric",
        "target",
        "window",
        "min-scale",
        "max-scale",
        "initial-scale",
        "target-utilization-percentage",
        "scale-down-delay",
        "scale-to-zero-pod-retention-period",
        "panic-window-percentage",
        "panic-threshold-percentage",
    )
    for name in (canonical, _ALTERNATES.get(canonical, canonical))
)


@dataclass(frozen=True)
class AutoscalingSpec:
    """A Service's scaling settings, in events in flight per replica.

    Defaults are Knative's (config-autoscaler): target 100 at 70% utilisation, a 60 s stable
    window, a panic window of 10% of it entered at 200% of target, scale to zero allowed.
    """

    min_scale: int = 0
    max_scale: int = 0  # 0 means unbounded, as in Knative
    initial_scale: int = 1
    target: float = 100.0
    target_utilization_percentage: float = 70.0
    container_concurrency: int = 0  # 0 means unbounded
    window_s: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    scale_down_delay_s: float = 0.0
    scale_to_zero_pod_retention_period_s: float = 0.0
    metric: str = "concurrency"
    autoscaler_class: str = KPA_CLASS

    @property
    def target_events_per_replica(self) -> float:
        """Events in flight one replica should hold: target x utilisation."""
        return self.target * self.target_utilization_percentage / 100.0

    @property
    def panic_window_s(self) -> float:
        return self.window_s * self.panic_window_percentage / 100.0


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise ValueError(f"{value} must be at least {minimum}")
        return value

    return parse


def _float_between(low: float, high: float | None) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise ValueError(f"{value:g} must be {bound}")
        return value

    return parse


def _duration_between(low_s: float, high_s: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        seconds = parse_go_duration_s(text)
        if not low_s <= seconds <= high_s:
            raise ValueError(f"{text!r} must be between {low_s:g}s and {high_s:g}s")
        return seconds

    return parse


def _metric(text: str) -> str:
    if text not in {"concurrency", "rps", "cpu", "memory"}:
        raise ValueError(f"unknown metric {text!r}")
    return text


_PARSERS: Final[dict[str, tuple[str, Callable[[str], object]]]] = {
    "min-scale": ("min_scale", _int_at_least(0)),
    "max-scale": ("max_scale", _int_at_least(0)),
    "initial-scale": ("initial_scale", _int_at_least(0)),
    "target": ("target", _float_between(_TARGET_MIN, None)),
    "target-utilization-percentage": ("target_utilization_percentage", _float_between(1, 100)),
    "window": ("window_s", _duration_between(_WINDOW_MIN_S, _WINDOW_MAX_S)),
    "panic-window-percentage": ("panic_window_percentage", _float_between(1, 100)),
    "panic-threshold-percentage": ("panic_threshold_percentage", _float_between(110, 1000)),
    "scale-down-delay": ("scale_down_delay_s", _duration_between(0, _WINDOW_MAX_S)),
    "scale-to-zero-pod-retention-period": (
        "scale_to_zero_pod_retention_period_s",
        _duration_between(0, _WINDOW_MAX_S),
    ),
    "metric": ("metric", _metric),
    "class": ("autoscaler_class", str),
}


def parse_autoscaling(
    annotations: Mapping[str, str], *, container_concurrency: int | None = None
) -> tuple[AutoscalingSpec, list[tuple[str, str]]]:
    """Parse the autoscaling annotations; also return (annotation key, problem) pairs."""
    values: dict[str, object] = {}
    problems: list[tuple[str, str]] = []
    for canonical, (field, parse) in _PARSERS.items():
        keys = [AUTOSCALING_PREFIX + canonical]
        if canonical in _ALTERNATES:
            keys.append(AUTOSCALING_PREFIX + _ALTERNATES[canonical])
        present = [key for key in keys if key in annotations]
        if len(present) > 1:
            problems.append((present[1], f"conflicts with {present[0]}; set only one spelling"))
            continue
        if not present:
            continue
        try:
            values[field] = parse(annotations[present[0]])
        except ValueError as error:
            problems.append((present[0], str(error)))
    concurrency = container_concurrency or 0
    if concurrency > 0:
        # Knative ResolveMetricTarget: a hard limit caps the target (total = min(target, cc)).
        target = values.get("target", AutoscalingSpec.target)
        assert isinstance(target, float)
        values["target"] = min(target, float(concurrency))
    spec = AutoscalingSpec(container_concurrency=concurrency, **values)  # type: ignore[arg-type]
    if spec.max_scale and spec.min_scale > spec.max_scale:
        key = next(k for k in annotations if k.endswith(("/min-scale", "/minScale")))
        problems.append((key, f"min-scale {spec.min_scale} exceeds max-scale {spec.max_scale}"))
    if spec.max_scale and spec.initial_scale > spec.max_scale and "initial_scale" in values:
        key = next(k for k in annotations if k.endswith(("/initial-scale", "/initialScale")))
        problems.append(
            (key, f"initial-scale {spec.initial_scale} exceeds max-scale {spec.max_scale}")
        )
    return spec, problems


def autoscaling_from_annotations(
    annotations: Mapping[str, str], *, container_concurrency: int | None = None
) -> AutoscalingSpec:
    """The AutoscalingSpec of already validated annotations (problems raise ValueError)."""
    spec, problems = parse_autoscaling(annotations, container_concurrency=container_concurrency)
    if problems:
        raise ValueError("; ".join(f"{key}: {message}" for key, message in problems))
    return spec

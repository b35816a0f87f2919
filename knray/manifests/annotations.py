"""Annotation checks: knray's own keys, Knative keys knray honours, and those it only tolerates.

Annotations are free-form in Kubernetes, so unknown ones are ignored, except in domains knray
speaks for: a misspelt ``knray.dev/`` key is an error, and a Knative or vendor annotation knray
does not implement loads with a warning naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from knray.manifests.scaling import (
    AUTOSCALING_PREFIX,
    IMPLEMENTED_AUTOSCALING_KEYS,
    KPA_CLASS,
    parse_autoscaling,
)
from knray.manifests.trigger import CEL_FILTER_ANNOTATION, DELIVERY_ORDER_ANNOTATION, check_cel

__all__ = ["HANDLER_ANNOTATION", "NUM_GPUS_ANNOTATION", "AnnotationReport", "check_annotations"]

HANDLER_ANNOTATION: Final = "knray.dev/handler"
# GPUs per replica (Ray's ``num_gpus``, fractions allowed); overrides ``nvidia.com/gpu`` limits.
NUM_GPUS_ANNOTATION: Final = "knray.dev/num-gpus"
_HANDLER_FORMAT: Final = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_KNRAY_KEYS_BY_KIND: Final = {
    "Trigger": frozenset({CEL_FILTER_ANNOTATION}),
    "Service": frozenset({HANDLER_ANNOTATION, NUM_GPUS_ANNOTATION}),
}
# Domains whose annotations configure a Kubernetes data plane knray replaces.
_TOLERATED_PREFIXES: Final = (
    "networking.knative.dev/",
    "networking.internal.knative.dev/",
    "serving.knative.dev/",
    "features.knative.dev/",
    "autoscaling.eventing.knative.dev/",
    "k8s.aliyun.com/",
)
_BROKER_CLASSES: Final = frozenset({"MTChannelBasedBroker", "Kafka"})


@dataclass
class AnnotationReport:
    """Problems (errors) and warnings found in annotations, as (path, message) pairs."""

    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)


def _path(prefix: str, key: str) -> str:
    return f"{prefix}.annotations[{key}]"


def _annotations_at(document: Mapping[str, Any], *keys: str) -> dict[str, str]:
    node: Any = document
    for key in keys:
        if not isinstance(node, Mapping):
            return {}
        node = node.get(key)
    if not isinstance(node, Mapping):
        return {}
    # Non-string values are reported by the model; only strings are checked here.
    return {str(k): v for k, v in node.items() if isinstance(v, str)}


def check_annotations(kind: str, document: Mapping[str, Any]) -> AnnotationReport:
    """Check the annotations of one raw manifest document of ``kind``."""
    report = AnnotationReport()
    top = _annotations_at(document, "metadata", "annotations")
    _check_common(kind, top, "metadata", report)
    if kind == "Service":
        template = _annotations_at(document, "spec", "template", "metadata", "annotations")
        prefix = "spec.template.metadata"
        _check_common(kind, template, prefix, report)
        for key in top:
            if key.startswith(AUTOSCALING_PREFIX):
                # Knative rejects these on the Service itself: they belong to the revision.
                report.errors.append(
                    (_path("metadata", key), f"put autoscaling annotations under {prefix}")
                )
        _check_autoscaling(template, prefix, document, report)
    elif kind == "Trigger":
        _check_trigger(top, report)
    elif kind == "Broker":
        broker_class = top.get("eventing.knative.dev/broker.class")
        if broker_class is not None and broker_class not in _BROKER_CLASSES:
            report.warnings.append(
                (
                    _path("metadata", "eventing.knative.dev/broker.class"),
                    f"broker class {broker_class!r} is not implemented; "
                    "knray runs its own in-memory broker (classes: "
                    f"{', '.join(sorted(_BROKER_CLASSES))})",
                )
            )
    return report


def _check_common(
    kind: str, annotations: dict[str, str], prefix: str, report: AnnotationReport
) -> None:
    known_knray = _KNRAY_KEYS_BY_KIND.get(kind, frozenset())
    for key, value in annotations.items():
        path = _path(prefix, key)
        if key.startswith("knray.dev/"):
            if key not in known_knray:
                known = ", ".join(sorted(known_knray)) or "none"
                report.errors.append((path, f"unknown knray annotation (known on {kind}: {known})"))
            elif key == HANDLER_ANNOTATION and not _HANDLER_FORMAT.fullmatch(value):
                report.errors.append((path, f"{value!r} is not 'package.module:attribute'"))
            elif key == NUM_GPUS_ANNOTATION and _gpu_count(value) is None:
                report.errors.append((path, f"{value!r} is not a number of GPUs (0 or more)"))
        elif key.startswith(_TOLERATED_PREFIXES):
            report.warnings.append((path, "not implemented by knray; ignored"))
        elif key.startswith(AUTOSCALING_PREFIX) and kind != "Service":
            report.warnings.append((path, f"autoscaling annotations have no effect on a {kind}"))
        elif (
            key.startswith("eventing.knative.dev/") and key != "eventing.knative.dev/broker.class"
        ) or (key.startswith("kafka.eventing.knative.dev/") and key != DELIVERY_ORDER_ANNOTATION):
            report.warnings.append((path, "not implemented by knray; ignored"))


def _gpu_count(value: str) -> float | None:
    try:
        count = float(value)
    except ValueError:
        return None
    return count if math.isfinite(count) and count >= 0 else None


def _check_autoscaling(
    annotations: dict[str, str], prefix: str, document: Mapping[str, Any], report: AnnotationReport
) -> None:
    for key in annotations:
        if key.startswith(AUTOSCALING_PREFIX) and key not in IMPLEMENTED_AUTOSCALING_KEYS:
            report.warnings.append((_path(prefix, key), "not implemented by knray; ignored"))
    concurrency = document.get("spec", {}).get("template", {}).get("spec", {})
    container_concurrency = (
        concurrency.get("containerConcurrency") if isinstance(concurrency, Mapping) else None
    )
    spec, problems = parse_autoscaling(
        annotations,
        container_concurrency=container_concurrency
        if isinstance(container_concurrency, int) and container_concurrency >= 0
        else None,
    )
    report.errors.extend((_path(prefix, key), message) for key, message in problems)
    class_key = next((k for k in annotations if k == AUTOSCALING_PREFIX + "class"), None)
    if class_key and spec.autoscaler_class != KPA_CLASS:
        report.warnings.append(
            (
                _path(prefix, class_key),
                f"autoscaler class {spec.autoscaler_class!r} is not implemented; "
                "knray's concurrency autoscaler (KPA semantics) is used",
            )
        )
    metric_key = AUTOSCALING_PREFIX + "metric"
    if metric_key in annotations and spec.metric != "concurrency" and not problems:
        report.warnings.append(
            (
                _path(prefix, metric_key),
                f"metric {spec.metric!r} is not implemented; knray scales on events in flight",
            )
        )


def _check_trigger(annotations: dict[str, str], report: AnnotationReport) -> None:
    expression = annotations.get(CEL_FILTER_ANNOTATION)
    if expression is not None:
        try:
            check_cel(expression)
        except ValueError as error:
            report.errors.append((_path("metadata", CEL_FILTER_ANNOTATION), str(error)))
    order = annotations.get(DELIVERY_ORDER_ANNOTATION)
    if order is not None and order not in {"ordered", "unordered"}:
        report.errors.append(
            (_path("metadata", DELIVERY_ORDER_ANNOTATION), f"{order!r} is not ordered or unordered")
        )

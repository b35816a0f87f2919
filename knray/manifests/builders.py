"""Knative resources built in Python with keyword arguments, checked exactly as YAML is.

Each function writes the manifest a user would write and loads it with the YAML loader's
checks (field paths in errors, annotation checks, warnings), so a resource built here and the
same resource loaded from YAML are equal::

    from knray.manifests.builders import broker, service, trigger

    resources = [
        broker("chat"),
        service("moderation", handler="my_app.handlers:moderate", max_scale=4),
        trigger("moderate", broker="chat", subscriber="moderation", exact={"type": "chat.message"}),
    ]

Durations are seconds (floats); names default to the ``default`` namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, TypeVar

from knray.manifests.annotations import HANDLER_ANNOTATION, NUM_GPUS_ANNOTATION
from knray.manifests.base import Destination, Resource
from knray.manifests.broker import Broker
from knray.manifests.delivery import DeliverySpec
from knray.manifests.kafka_source import KafkaSource
from knray.manifests.loader import parse_resource
from knray.manifests.scaling import AUTOSCALING_PREFIX
from knray.manifests.service import KnativeService
from knray.manifests.trigger import DELIVERY_ORDER_ANNOTATION, SubscriptionsAPIFilter, Trigger

__all__ = [
    "DestinationLike",
    "broker",
    "delivery",
    "destination",
    "handler_spec",
    "kafka_source",
    "service",
    "trigger",
]

_EVENTING: Final = "eventing.knative.dev/v1"
_SERVING: Final = "serving.knative.dev/v1"

DestinationLike = str | Resource | Destination | Mapping[str, Any]
_R = TypeVar("_R", bound=Resource)


def _number(value: float) -> str:
    """A number without exponent or trailing zeros: 0.2 -> '0.2', 10.0 -> '10'."""
    return format(Decimal(str(value)).normalize(), "f")


def _iso_seconds(seconds: float) -> str:
    return f"PT{_number(seconds)}S"


def _go_seconds(seconds: float) -> str:
    return f"{_number(seconds)}s"


def destination(target: DestinationLike) -> dict[str, Any]:
    """A ``Destination`` document: a Service by name (``"moderation"`` or
    ``"namespace/moderation"``), an absolute URI, a Broker or Service object, or a
    Destination (model or dict) as is."""
    if isinstance(target, Destination):
        return target.model_dump(by_alias=True, exclude_none=True)
    if isinstance(target, Mapping):
        return dict(target)
    if isinstance(target, Resource):
        api = target.api_version
        return {
            "ref": {
                "apiVersion": api,
                "kind": target.kind,
                "name": target.name,
                "namespace": target.namespace,
            }
        }
    if "://" in target:
        return {"uri": target}
    namespace, _, name = target.rpartition("/")
    ref: dict[str, Any] = {"apiVersion": _SERVING, "kind": "Service", "name": name}
    if namespace:
        ref["namespace"] = namespace
    return {"ref": ref}


def delivery(
    *,
    retry: int | None = None,
    backoff_policy: str | None = None,
    backoff_delay_s: float | None = None,
    timeout_s: float | None = None,
    dead_letter_sink: DestinationLike | None = None,
) -> DeliverySpec:
    """A delivery spec: retries, backoff (``linear`` or ``exponential``), per-attempt timeout
    and the dead-letter sink (see :func:`destination`)."""
    document: dict[str, Any] = {}
    if retry is not None:
        document["retry"] = retry
    if backoff_policy is not None:
        document["backoffPolicy"] = backoff_policy
    if backoff_delay_s is not None:
        document["backoffDelay"] = _iso_seconds(backoff_delay_s)
    if timeout_s is not None:
        document["timeout"] = _iso_seconds(timeout_s)
    if dead_letter_sink is not None:
        document["deadLetterSink"] = destination(dead_letter_sink)
    return DeliverySpec.model_validate(document)


def _metadata(
    name: str,
    namespace: str,
    annotations: Mapping[str, str] | None,
    labels: Mapping[str, str] | None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    if labels:
        metadata["labels"] = dict(labels)
    return metadata


def _delivery_document(spec: DeliverySpec | None) -> dict[str, Any] | None:
    return None if spec is None else spec.model_dump(by_alias=True, exclude_none=True)


def broker(
    name: str,
    *,
    namespace: str = "default",
    delivery: DeliverySpec | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Broker:
    """A Broker; ``delivery`` (see :func:`delivery`) applies to Triggers without their own."""
    document: dict[str, Any] = {
        "apiVersion": _EVENTING,
        "kind": "Broker",
        "metadata": _metadata(name, namespace, annotations, labels),
        "spec": {},
    }
    if delivery is not None:
        document["spec"]["delivery"] = _delivery_document(delivery)
    return _checked(document, Broker)


def handler_spec(handler: str | Callable[..., Any]) -> str:
    """``package.module:attr`` of a handler function or class (or the spec itself).

    A handler defined in a notebook or script is ``__main__:name``: knray ships it to the
    replicas by value.
    """
    if isinstance(handler, str):
        return handler
    module = getattr(handler, "__module__", None)
    qualname = getattr(handler, "__qualname__", None)
    if not module or not qualname:
        raise ValueError(f"{handler!r} has no module and name: pass a function or a class")
    if "<" in qualname:
        raise ValueError(
            f"handler {module}:{qualname} is a lambda or defined inside a function; "
            "define it at the top level of a module or notebook"
        )
    return f"{module}:{qualname}"


def service(
    name: str,
    *,
    handler: str | Callable[..., Any] | None = None,
    namespace: str = "default",
    image: str | None = None,
    min_scale: int | None = None,
    max_scale: int | None = None,
    initial_scale: int | None = None,
    target: float | None = None,
    target_utilization_percentage: float | None = None,
    container_concurrency: int | None = None,
    window_s: float | None = None,
    scale_down_delay_s: float | None = None,
    scale_to_zero_retention_s: float | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    timeout_s: int | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> KnativeService:
    """A Knative Service running ``handler`` (a ``package.module:attr`` spec, or the function
    or class itself), with Knative's autoscaling settings as keyword arguments.

    ``num_gpus`` sets ``knray.dev/num-gpus`` (Ray's ``num_gpus`` per replica); ``num_cpus``
    the container's CPU request. ``image`` alone (e.g. Knative's event-display) selects a
    built-in handler.
    """
    template_annotations: dict[str, str] = dict(annotations or {})
    if handler is not None:
        template_annotations[HANDLER_ANNOTATION] = handler_spec(handler)
    scaling: dict[str, float | int | str | None] = {
        "min-scale": min_scale,
        "max-scale": max_scale,
        "initial-scale": initial_scale,
        "target": target,
        "target-utilization-percentage": target_utilization_percentage,
        "window": None if window_s is None else _go_seconds(window_s),
        "scale-down-delay": None if scale_down_delay_s is None else _go_seconds(scale_down_delay_s),
        "scale-to-zero-pod-retention-period": (
            None if scale_to_zero_retention_s is None else _go_seconds(scale_to_zero_retention_s)
        ),
    }
    for key, value in scaling.items():
        if value is not None:
            template_annotations[AUTOSCALING_PREFIX + key] = (
                value if isinstance(value, str) else _number(value)
            )
    if num_gpus is not None:
        template_annotations[NUM_GPUS_ANNOTATION] = _number(num_gpus)
    revision: dict[str, Any] = {}
    container: dict[str, Any] = {}
    if image is not None:
        container["image"] = image
    if num_cpus is not None:
        container["resources"] = {"requests": {"cpu": _number(num_cpus)}}
    if container:
        revision["containers"] = [container]
    if container_concurrency is not None:
        revision["containerConcurrency"] = container_concurrency
    if timeout_s is not None:
        revision["timeoutSeconds"] = timeout_s
    document = {
        "apiVersion": _SERVING,
        "kind": "Service",
        "metadata": _metadata(name, namespace, None, labels),
        "spec": {"template": {"metadata": {"annotations": template_annotations}, "spec": revision}},
    }
    return _checked(document, KnativeService)


def _one_per_attribute(dialect: str, values: Mapping[str, str] | None) -> list[dict[str, Any]]:
    # Knative: each exact/prefix/suffix element holds one attribute; elements are ANDed.
    return [{dialect: {key: value}} for key, value in (values or {}).items()]


def trigger(
    name: str,
    *,
    broker: str,
    subscriber: DestinationLike,
    namespace: str = "default",
    attributes: Mapping[str, str] | None = None,
    exact: Mapping[str, str] | None = None,
    prefix: Mapping[str, str] | None = None,
    suffix: Mapping[str, str] | None = None,
    cesql: str | None = None,
    cel: str | None = None,
    filters: Sequence[SubscriptionsAPIFilter | Mapping[str, Any]] = (),
    delivery: DeliverySpec | None = None,
    ordered: bool | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Trigger:
    """A Trigger on ``broker`` delivering to ``subscriber`` (see :func:`destination`).

    Filters, all ANDed: ``attributes`` is the legacy ``spec.filter.attributes``; ``exact``,
    ``prefix``, ``suffix`` (one element per attribute), ``cesql``, ``cel`` and raw
    ``filters`` elements go to ``spec.filters`` (which then overrides ``attributes``, as in
    Knative). ``ordered`` delivers one event at a time, in order.
    """
    elements: list[dict[str, Any]] = [
        *_one_per_attribute("exact", exact),
        *_one_per_attribute("prefix", prefix),
        *_one_per_attribute("suffix", suffix),
    ]
    if cesql is not None:
        elements.append({"cesql": cesql})
    if cel is not None:
        elements.append({"cel": cel})
    for element in filters:
        if isinstance(element, SubscriptionsAPIFilter):
            elements.append(element.model_dump(by_alias=True, exclude_none=True))
        else:
            elements.append(dict(element))
    spec: dict[str, Any] = {"broker": broker, "subscriber": destination(subscriber)}
    if attributes is not None:
        spec["filter"] = {"attributes": dict(attributes)}
    if elements:
        spec["filters"] = elements
    if delivery is not None:
        spec["delivery"] = _delivery_document(delivery)
    all_annotations = dict(annotations or {})
    if ordered is not None:
        all_annotations[DELIVERY_ORDER_ANNOTATION] = "ordered" if ordered else "unordered"
    document = {
        "apiVersion": _EVENTING,
        "kind": "Trigger",
        "metadata": _metadata(name, namespace, all_annotations, labels),
        "spec": spec,
    }
    return _checked(document, Trigger)


def kafka_source(
    name: str,
    *,
    topics: Sequence[str],
    sink: DestinationLike,
    bootstrap_servers: Sequence[str] = ("127.0.0.1:9092",),
    namespace: str = "default",
    consumer_group: str | None = None,
    consumers: int = 1,
    initial_offset: str = "latest",
    ordering: str = "ordered",
    extensions: Mapping[str, str] | None = None,
    delivery: DeliverySpec | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> KafkaSource:
    """A KafkaSource reading ``topics`` into ``sink`` (a Broker object, or see
    :func:`destination`); ``extensions`` become ``ceOverrides.extensions``."""
    spec: dict[str, Any] = {
        "bootstrapServers": list(bootstrap_servers),
        "topics": list(topics),
        "consumers": consumers,
        "initialOffset": initial_offset,
        "ordering": ordering,
        "sink": destination(sink),
    }
    if consumer_group is not None:
        spec["consumerGroup"] = consumer_group
    if extensions:
        spec["ceOverrides"] = {"extensions": dict(extensions)}
    if delivery is not None:
        spec["delivery"] = _delivery_document(delivery)
    document = {
        "apiVersion": "sources.knative.dev/v1beta1",
        "kind": "KafkaSource",
        "metadata": _metadata(name, namespace, annotations, labels),
        "spec": spec,
    }
    return _checked(document, KafkaSource)


def _checked(document: dict[str, Any], kind: type[_R]) -> _R:
    resource = parse_resource(document)
    assert isinstance(resource, kind)
    return resource

"""The desired state of a set of manifests: what must run, with every reference resolved.

Pure: no Ray. The reconciler turns a Plan into actors and deployments, and the difference of
two Plans into updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from knray.errors import FieldProblem, ManifestError
from knray.manifests import (
    SOURCE_TYPES,
    Broker,
    DeliverySpec,
    Destination,
    KnativeService,
    Resource,
    Trigger,
)
from knray.manifests.trigger import DeliveryOrder

__all__ = [
    "BrokerPlan",
    "Plan",
    "ServicePlan",
    "SourcePlan",
    "TargetKind",
    "TargetRef",
    "TriggerPlan",
    "build_plan",
]


class TargetKind(StrEnum):
    """What a destination resolves to."""

    SERVICE = "service"
    BROKER = "broker"
    URI = "uri"


@dataclass(frozen=True)
class TargetRef:
    """A resolved destination: a Service or Broker by ``namespace/name``, or a URI."""

    kind: TargetKind
    name: str = ""
    namespace: str = ""
    uri: str = ""

    @property
    def key(self) -> str:
        return self.uri if self.kind is TargetKind.URI else f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return self.uri if self.kind is TargetKind.URI else f"{self.kind}/{self.key}"


@dataclass(frozen=True)
class TriggerPlan:
    """A Trigger with its subscriber and dead-letter sink resolved and its delivery merged."""

    trigger: Trigger
    subscriber: TargetRef
    delivery: DeliverySpec | None
    dead_letter: TargetRef | None
    ordered: bool

    @property
    def key(self) -> str:
        return self.trigger.key


@dataclass(frozen=True)
class BrokerPlan:
    """A Broker and the Triggers that subscribe to it."""

    broker: Broker
    triggers: tuple[TriggerPlan, ...]

    @property
    def key(self) -> str:
        return f"{self.broker.namespace}/{self.broker.name}"


@dataclass(frozen=True)
class ServicePlan:
    """A Knative Service to run as a Serve deployment.

    ``application`` names the Serve application hosting the deployment when it is part of a
    larger one (``knray.runtime.app``); empty when the Service is an application of its own.
    """

    service: KnativeService
    application: str = ""

    @property
    def key(self) -> str:
        return f"{self.service.namespace}/{self.service.name}"


@dataclass(frozen=True)
class SourcePlan:
    """A source (any kind of ``knray.manifests.SOURCE_TYPES``) with its sink and dead-letter
    sink resolved."""

    source: Resource
    sink: TargetRef
    delivery: DeliverySpec | None
    dead_letter: TargetRef | None

    @property
    def key(self) -> str:
        return self.source.key


@dataclass(frozen=True)
class Plan:
    """Everything a set of manifests asks to run."""

    brokers: tuple[BrokerPlan, ...] = ()
    services: tuple[ServicePlan, ...] = ()
    sources: tuple[SourcePlan, ...] = ()
    resources: tuple[Resource, ...] = field(default=(), repr=False)

    def broker(self, key: str) -> BrokerPlan | None:
        return next((b for b in self.brokers if b.key == key), None)

    def service(self, key: str) -> ServicePlan | None:
        return next((s for s in self.services if s.key == key), None)


_SERVICE_APIS = frozenset({"serving.knative.dev/v1"})
_BROKER_APIS = frozenset({"eventing.knative.dev/v1"})


def _resolve(
    destination: Destination,
    owner: Resource,
    path: str,
    defined: set[tuple[str, str, str]],
    problems: list[FieldProblem],
) -> TargetRef | None:
    if destination.ref is None:
        return TargetRef(TargetKind.URI, uri=destination.uri or "")
    ref = destination.ref
    namespace = ref.namespace or owner.namespace
    if ref.kind == "Service" and ref.api_version in _SERVICE_APIS:
        kind = TargetKind.SERVICE
    elif ref.kind == "Broker" and ref.api_version in _BROKER_APIS:
        kind = TargetKind.BROKER
    else:
        problems.append(
            FieldProblem(
                f"{path}.ref",
                f"knray can deliver to a serving.knative.dev/v1 Service, an "
                f"eventing.knative.dev/v1 Broker or a URI, not {ref.api_version} {ref.kind}",
                owner.key,
            )
        )
        return None
    if (ref.kind, namespace, ref.name) not in defined:
        problems.append(
            FieldProblem(
                f"{path}.ref", f"{ref.kind} {namespace}/{ref.name} is not defined", owner.key
            )
        )
        return None
    if destination.uri:
        problems.append(
            FieldProblem(
                f"{path}.uri", "a path relative to a ref is not supported by knray", owner.key
            )
        )
        return None
    return TargetRef(kind, name=ref.name, namespace=namespace)


def _merge_delivery(
    broker: DeliverySpec | None, trigger: DeliverySpec | None
) -> DeliverySpec | None:
    # Knative: a Trigger's delivery replaces its Broker's as a whole when set.
    return trigger if trigger is not None else broker


def build_plan(resources: Sequence[Resource]) -> Plan:
    """Resolve every reference of ``resources``; ManifestError lists all unresolvable ones."""
    defined = {(type(r).KIND, r.namespace, r.name) for r in resources}
    problems: list[FieldProblem] = []
    brokers = [r for r in resources if isinstance(r, Broker)]
    triggers = [r for r in resources if isinstance(r, Trigger)]
    broker_plans = []
    for broker in brokers:
        planned = []
        broker_delivery = broker.spec.delivery
        for trigger in triggers:
            if trigger.namespace != broker.namespace or trigger.spec.broker != broker.name:
                continue
            subscriber = _resolve(
                trigger.spec.subscriber, trigger, "spec.subscriber", defined, problems
            )
            delivery = _merge_delivery(broker_delivery, trigger.spec.delivery)
            dead_letter = None
            if delivery is not None and delivery.dead_letter_sink is not None:
                dead_letter = _resolve(
                    delivery.dead_letter_sink,
                    trigger,
                    "spec.delivery.deadLetterSink",
                    defined,
                    problems,
                )
            if subscriber is not None:
                ordered = trigger.delivery_order is DeliveryOrder.ORDERED
                planned.append(TriggerPlan(trigger, subscriber, delivery, dead_letter, ordered))
        broker_plans.append(BrokerPlan(broker, tuple(planned)))
    for trigger in triggers:
        if ("Broker", trigger.namespace, trigger.spec.broker) not in defined:
            problems.append(
                FieldProblem(
                    "spec.broker",
                    f"Broker {trigger.namespace}/{trigger.spec.broker} is not defined",
                    trigger.key,
                )
            )
    source_plans = []
    for resource in resources:
        if not isinstance(resource, SOURCE_TYPES):
            continue
        spec: Any = getattr(resource, "spec", None)
        sink = _resolve(spec.sink, resource, "spec.sink", defined, problems)
        delivery = getattr(spec, "delivery", None)
        dead_letter = None
        if delivery is not None and delivery.dead_letter_sink is not None:
            dead_letter = _resolve(
                delivery.dead_letter_sink,
                resource,
                "spec.delivery.deadLetterSink",
                defined,
                problems,
            )
        if sink is not None:
            source_plans.append(SourcePlan(resource, sink, delivery, dead_letter))
    if problems:
        raise ManifestError(problems)
    services = tuple(ServicePlan(r) for r in resources if isinstance(r, KnativeService))
    return Plan(tuple(broker_plans), services, tuple(source_plans), tuple(resources))

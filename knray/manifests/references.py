"""Cross-resource checks: references that point outside the loaded set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from knray.errors import FieldProblem
from knray.manifests.base import Destination, Resource
from knray.manifests.broker import Broker
from knray.manifests.loader import SOURCE_TYPES
from knray.manifests.service import KnativeService
from knray.manifests.trigger import Trigger

__all__ = ["check_references"]

_KIND_OF_API: dict[str, type[Resource]] = {"Broker": Broker, "Service": KnativeService}


def check_references(resources: Sequence[Resource]) -> list[FieldProblem]:
    """Warnings for Triggers, sinks and dead-letter sinks naming a resource not in the set.

    Such a reference may exist elsewhere (on a cluster), so it is not an error; ``knray run``
    needs every referenced Broker and Service to be defined.
    """
    defined = {(type(r).KIND, r.namespace, r.name) for r in resources}
    warnings: list[FieldProblem] = []

    def check(destination: Destination | None, path: str, owner: Resource) -> None:
        if destination is None or destination.ref is None:
            return
        ref = destination.ref
        namespace = ref.namespace or owner.namespace
        if ref.kind in _KIND_OF_API and (ref.kind, namespace, ref.name) not in defined:
            warnings.append(
                FieldProblem(
                    path, f"{ref.kind} {namespace}/{ref.name} is not defined here", owner.key
                )
            )

    for resource in resources:
        if isinstance(resource, Trigger):
            spec = resource.spec
            if ("Broker", resource.namespace, spec.broker) not in defined:
                warnings.append(
                    FieldProblem(
                        "spec.broker",
                        f"Broker {resource.namespace}/{spec.broker} is not defined here",
                        resource.key,
                    )
                )
            check(spec.subscriber, "spec.subscriber", resource)
            if spec.delivery is not None:
                check(spec.delivery.dead_letter_sink, "spec.delivery.deadLetterSink", resource)
        elif isinstance(resource, SOURCE_TYPES):
            source_spec: Any = getattr(resource, "spec", None)
            check(source_spec.sink, "spec.sink", resource)
            delivery = getattr(source_spec, "delivery", None)
            if delivery is not None:
                check(delivery.dead_letter_sink, "spec.delivery.deadLetterSink", resource)
        elif isinstance(resource, Broker) and resource.spec.delivery is not None:
            check(resource.spec.delivery.dead_letter_sink, "spec.delivery.deadLetterSink", resource)
    return warnings

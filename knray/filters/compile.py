"""The compile step: a Trigger's declarative filters become one runtime Filter."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from knray.errors import FieldProblem, KnrayError, ManifestError
from knray.filters.all import AllFilter
from knray.filters.any import AnyFilter
from knray.filters.attributes import AttributesFilter
from knray.filters.base import Filter, MatchAll, SingleAttributeFilter
from knray.filters.cel import CELFilter
from knray.filters.cesql import CESQLFilter
from knray.filters.exact import ExactFilter
from knray.filters.not_ import NotFilter
from knray.filters.prefix import PrefixFilter
from knray.filters.suffix import SuffixFilter
from knray.manifests.loader import parse_resource
from knray.manifests.trigger import SubscriptionsAPIFilter, Trigger

__all__ = ["DIALECTS", "compile_filters", "compile_trigger"]

_Compile = Callable[[SubscriptionsAPIFilter, str], Filter]


def _single(kind: type[SingleAttributeFilter]) -> Callable[[Any, _Compile, str], Filter]:
    def build(value: Mapping[str, str], _: _Compile, __: str) -> Filter:
        ((attribute, text),) = value.items()
        return kind(attribute, text)

    return build


# One line per dialect of ``spec.filters`` (field name on SubscriptionsAPIFilter -> builder).
DIALECTS: Final[dict[str, Callable[[Any, _Compile, str], Filter]]] = {
    "exact": _single(ExactFilter),
    "prefix": _single(PrefixFilter),
    "suffix": _single(SuffixFilter),
    "all": lambda value, nested, path: AllFilter(
        _cheapest_first([nested(f, f"{path}.all[{i}]") for i, f in enumerate(value)])
    ),
    "any": lambda value, nested, path: AnyFilter(
        _cheapest_first([nested(f, f"{path}.any[{i}]") for i, f in enumerate(value)])
    ),
    "not_": lambda value, nested, path: NotFilter(nested(value, f"{path}.not")),
    "cesql": lambda value, _, __: CESQLFilter(value),
    "cel": lambda value, _, __: CELFilter(value),
}


def _cost(compiled: Filter) -> int:
    # Filters are pure, so the order of an AND or OR only changes speed: cheap ones first.
    if isinstance(compiled, SingleAttributeFilter | AttributesFilter | MatchAll):
        return 1
    if isinstance(compiled, CESQLFilter):
        return 10
    if isinstance(compiled, CELFilter):
        return 20
    if isinstance(compiled, AllFilter | AnyFilter):
        return max((_cost(f) for f in compiled.filters), default=1)
    if isinstance(compiled, NotFilter):
        return _cost(compiled.filter)
    return 50


def _cheapest_first(filters: list[Filter]) -> list[Filter]:
    return sorted(filters, key=_cost)


def _compile_one(spec: SubscriptionsAPIFilter, path: str) -> Filter:
    for field, build in DIALECTS.items():
        value = getattr(spec, field)
        if value is not None:
            try:
                return build(value, _compile_one, path)
            except ManifestError:
                raise
            except (KnrayError, ValueError) as error:
                name = field.rstrip("_")
                raise ManifestError([FieldProblem(f"{path}.{name}", str(error))]) from error
    raise ManifestError([FieldProblem(path, "no filter dialect set")])


def compile_filters(filters: list[SubscriptionsAPIFilter], path: str = "spec.filters") -> Filter:
    """Compile a ``filters`` list: entries are ANDed; an empty list matches everything."""
    compiled = [_compile_one(spec, f"{path}[{i}]") for i, spec in enumerate(filters)]
    if not compiled:
        return MatchAll()
    return compiled[0] if len(compiled) == 1 else AllFilter(_cheapest_first(compiled))


def compile_trigger(trigger: Trigger | Mapping[str, Any]) -> Filter:
    """The runtime filter of a Trigger (a model or a plain manifest dict).

    A non-empty ``spec.filters`` overrides ``spec.filter``; the ``knray.dev/cel-filter``
    annotation is ANDed with either. Invalid filters raise ManifestError with field paths.
    """
    if not isinstance(trigger, Trigger):
        resource = parse_resource(trigger)
        if not isinstance(resource, Trigger):
            raise ManifestError([FieldProblem("kind", f"expected a Trigger, got {resource.kind}")])
        trigger = resource
    spec = trigger.spec
    parts: list[Filter] = []
    if spec.filters:
        # Knative: when the new filters are set, the legacy attributes filter is ignored.
        parts.append(compile_filters(spec.filters))
    elif spec.filter is not None and spec.filter.attributes:
        parts.append(AttributesFilter(spec.filter.attributes))
    if trigger.cel_filter is not None:
        try:
            parts.append(CELFilter(trigger.cel_filter))
        except (KnrayError, ValueError) as error:
            path = "metadata.annotations[knray.dev/cel-filter]"
            raise ManifestError([FieldProblem(path, str(error))]) from error
    if not parts:
        return MatchAll()
    return parts[0] if len(parts) == 1 else AllFilter(_cheapest_first(parts))

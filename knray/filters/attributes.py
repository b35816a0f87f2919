"""``spec.filter.attributes``: exact, case-sensitive matches; "" means present and non-empty."""

from __future__ import annotations

from collections.abc import Mapping

from knray.events import CloudEvent
from knray.filters.base import attribute_text

__all__ = ["AttributesFilter"]


class AttributesFilter:
    """Every listed attribute must equal its value; an empty value only requires presence."""

    __slots__ = ("_exact", "_present")

    def __init__(self, attributes: Mapping[str, str]) -> None:
        self._exact = tuple((name, value) for name, value in attributes.items() if value)
        self._present = tuple(name for name, value in attributes.items() if not value)

    def match(self, event: CloudEvent) -> bool:
        for name, value in self._exact:
            if attribute_text(event, name) != value:
                return False
        return all(attribute_text(event, name) for name in self._present)

    def __repr__(self) -> str:
        attrs = dict(self._exact) | dict.fromkeys(self._present, "")
        return f"AttributesFilter({attrs!r})"

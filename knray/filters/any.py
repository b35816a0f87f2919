"""The ``any`` dialect: at least one nested filter must pass."""

from __future__ import annotations

from collections.abc import Sequence

from knray.events import CloudEvent
from knray.filters.base import Filter

__all__ = ["AnyFilter"]


class AnyFilter:
    """Passes when at least one nested filter passes (short-circuit)."""

    __slots__ = ("filters",)

    def __init__(self, filters: Sequence[Filter]) -> None:
        self.filters = tuple(filters)

    def match(self, event: CloudEvent) -> bool:
        return any(nested.match(event) for nested in self.filters)

    def __repr__(self) -> str:
        return f"AnyFilter({list(self.filters)!r})"

"""The ``all`` dialect: every nested filter must pass (also how ``filters`` entries combine)."""

from __future__ import annotations

from collections.abc import Sequence

from knray.events import CloudEvent
from knray.filters.base import Filter

__all__ = ["AllFilter"]


class AllFilter:
    """Passes when every nested filter passes (short-circuit, in the given order)."""

    __slots__ = ("filters",)

    def __init__(self, filters: Sequence[Filter]) -> None:
        self.filters = tuple(filters)

    def match(self, event: CloudEvent) -> bool:
        return all(nested.match(event) for nested in self.filters)

    def __repr__(self) -> str:
        return f"AllFilter({list(self.filters)!r})"

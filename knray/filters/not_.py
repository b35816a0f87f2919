"""The ``not`` dialect: the nested filter must fail."""

from __future__ import annotations

from knray.events import CloudEvent
from knray.filters.base import Filter

__all__ = ["NotFilter"]


class NotFilter:
    """Passes when the nested filter does not."""

    __slots__ = ("filter",)

    def __init__(self, nested: Filter) -> None:
        self.filter = nested

    def match(self, event: CloudEvent) -> bool:
        return not self.filter.match(event)

    def __repr__(self) -> str:
        return f"NotFilter({self.filter!r})"

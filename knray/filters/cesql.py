"""The ``cesql`` dialect: a CloudEvents SQL expression; any evaluation error means no match."""

from __future__ import annotations

from knray import cesql
from knray.events import CloudEvent

__all__ = ["CESQLFilter"]


class CESQLFilter:
    """Passes when the expression evaluates to true without error (cesql/spec.md section 1.2)."""

    __slots__ = ("_compiled", "expression")

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._compiled = cesql.compile(expression)

    def match(self, event: CloudEvent) -> bool:
        return self._compiled.matches(event)

    def __repr__(self) -> str:
        return f"CESQLFilter({self.expression!r})"

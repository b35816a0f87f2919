"""The ``cel`` dialect (knray's extension): a CEL expression over the variable ``event``."""

from __future__ import annotations

from knray.cel import compile_expression
from knray.events import CloudEvent

__all__ = ["CELFilter"]


class CELFilter:
    """Passes when the expression is true; any evaluation error means no match.

    Variables follow Dapr's CEL routing: ``event.type``, ``event.myext``, ``event.data.score``.
    """

    __slots__ = ("_compiled",)

    def __init__(self, expression: str, backend: str | None = None) -> None:
        self._compiled = compile_expression(expression, backend)

    @property
    def expression(self) -> str:
        return self._compiled.expression

    @property
    def backend(self) -> str:
        return self._compiled.backend

    def match(self, event: CloudEvent) -> bool:
        return self._compiled.match(event)

    def __reduce__(self) -> tuple[object, ...]:
        return (CELFilter, (self.expression, self.backend))

    def __repr__(self) -> str:
        return f"CELFilter({self.expression!r}, backend={self.backend!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CELFilter):
            return NotImplemented
        return self._compiled == other._compiled

    def __hash__(self) -> int:
        return hash(self._compiled)

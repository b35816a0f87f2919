"""The protocol a CEL runtime implements to evaluate :class:`~knray.cel.CELExpression`."""

from __future__ import annotations

from typing import Any, Protocol

from knray.cel.references import References

__all__ = ["CELBackend", "CELProgram"]


class CELProgram(Protocol):
    """One compiled expression, safe to evaluate from several threads at once."""

    def matches(self, variables: dict[str, Any]) -> bool:
        """True only when the expression evaluates to boolean true.

        ``variables`` holds plain Python values (dict, list, str, int, float, bool, bytes). An
        evaluation error may raise any exception or return False; the filter treats both as no
        match.
        """
        ...


class CELBackend(Protocol):
    """A CEL runtime: compiles expressions over the single variable ``event`` (type dyn)."""

    @property
    def name(self) -> str:
        """The name used to select this backend (argument or ``KNRAY_CEL_BACKEND``)."""
        ...

    def compile(self, expression: str, references: References) -> CELProgram:
        """Compile ``expression``; raise :class:`~knray.errors.CELCompileError` when it is invalid.

        ``references`` is the token-level analysis of the expression, for backends that do not
        check declarations themselves.
        """
        ...

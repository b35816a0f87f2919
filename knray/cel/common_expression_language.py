"""CEL backend on ``common-expression-language``: Python bindings of the Rust ``cel`` crate.

The Rust runtime has no type checker. Undeclared variables and functions outside the CEL
standard library are rejected at compile time from the parse (its ``variables()`` and
``functions()``); static type errors surface at evaluation, meaning no match.
"""

from __future__ import annotations

from typing import Any

import cel

from knray.cel.references import (
    MACROS,
    STANDARD_FUNCTIONS,
    References,
    undeclared_reference,
)
from knray.errors import CELCompileError

__all__ = ["BACKEND", "CommonExpressionLanguageBackend", "CommonExpressionLanguageProgram"]


class CommonExpressionLanguageProgram:
    """A parsed program of the Rust runtime."""

    __slots__ = ("_execute",)

    def __init__(self, program: cel.Program) -> None:
        self._execute = program.execute

    def matches(self, variables: dict[str, Any]) -> bool:
        return self._execute(variables) is True


class CommonExpressionLanguageBackend:
    """Stateless: every program is independent."""

    @property
    def name(self) -> str:
        return "common-expression-language"

    def compile(self, expression: str, references: References) -> CommonExpressionLanguageProgram:
        try:
            program = cel.compile(expression)
        except Exception as error:
            raise CELCompileError(str(error)) from None
        problem = undeclared_reference(references, frozenset(program.variables()))
        if problem is None:
            # The parse's own function list catches calls the tokenizer could not see.
            unknown = sorted(
                name
                for name in program.functions()
                if name[:1].isalpha() and name not in STANDARD_FUNCTIONS | MACROS
            )
            if unknown:
                problem = f"undeclared reference to function '{unknown[0]}'"
        if problem is not None:
            raise CELCompileError(problem)
        return CommonExpressionLanguageProgram(program)


BACKEND = CommonExpressionLanguageBackend()

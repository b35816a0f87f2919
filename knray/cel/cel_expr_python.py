"""CEL backend on ``cel-expr-python``: Google's C++ CEL runtime, with its type checker.

The environment declares one variable, ``event``, of type dyn, and the standard library only
(as cel-go's default environment in Dapr). Undeclared names, unknown functions and static type
errors are compile errors. Evaluation errors come back as error values, not exceptions.

cel-expr-python 0.1.3 truncates a Python ``str`` or ``bytes`` at the first NUL character when it
converts it (``bytearray`` is converted whole). So binary data is passed as a ``bytearray``, and
an event whose variables hold any other string or bytes with a NUL is evaluated by the
``common-expression-language`` backend instead, which converts them faithfully.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from cel_expr_python import cel

from knray.cel.backend import CELProgram
from knray.cel.references import VARIABLE, References, analyze
from knray.errors import CELCompileError

__all__ = ["BACKEND", "CelExprPythonBackend", "CelExprPythonProgram"]


_SCALARS: Final = frozenset({int, float, bool, type(None)})


def _has_nul(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return "\x00" in value
    if kind is dict:
        for key, item in value.items():
            if type(key) is str:
                if "\x00" in key:
                    return True
            elif _has_nul(key):
                return True
            if type(item) is str:
                if "\x00" in item:
                    return True
            elif type(item) not in _SCALARS and _has_nul(item):
                return True
        return False
    if kind is list or kind is tuple:
        for item in value:
            if type(item) is str:
                if "\x00" in item:
                    return True
            elif type(item) not in _SCALARS and _has_nul(item):
                return True
        return False
    if kind is bytes:
        return b"\x00" in value
    return False


class CelExprPythonProgram:
    """A checked expression of ``cel-expr-python``."""

    __slots__ = ("_eval", "_expression", "_fallback", "_lock")

    def __init__(self, expression: Any, source: str) -> None:
        self._eval = expression.eval
        self._expression = source
        self._fallback: CELProgram | None = None
        self._lock = threading.Lock()

    def matches(self, variables: dict[str, Any]) -> bool:
        fields = variables[VARIABLE]
        data = fields.get("data")
        binary = type(data) is bytes
        if binary:
            fields["data"] = bytearray(data)
        if _has_nul(fields):
            if binary:
                fields["data"] = data
            return self._faithful().matches(variables)
        # An evaluation error is a Value of type ERROR whose value() is the message string.
        return self._eval(None, variables).value() is True

    def _faithful(self) -> CELProgram:
        with self._lock:
            if self._fallback is None:
                # Imported on first need: importing ``cel`` pulls in its command-line tooling.
                from knray.cel.common_expression_language import (  # noqa: PLC0415
                    BACKEND as FALLBACK,
                )

                self._fallback = FALLBACK.compile(self._expression, analyze(self._expression))
            return self._fallback


class CelExprPythonBackend:
    """Compiles with one shared environment, created on first use."""

    def __init__(self) -> None:
        self._env: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "cel-expr-python"

    def compile(self, expression: str, references: References) -> CelExprPythonProgram:
        with self._lock:
            if self._env is None:
                self._env = cel.NewEnv(variables={VARIABLE: cel.Type.DYN})
            try:
                compiled = self._env.compile(expression)
            except Exception as error:
                raise CELCompileError(str(error)) from None
        return CelExprPythonProgram(compiled, expression)


BACKEND = CelExprPythonBackend()

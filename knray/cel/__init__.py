"""CEL expressions over CloudEvents, with the variables of Dapr's CEL pub/sub routing.

One variable, ``event``: every context attribute and extension is a field (``event.type``,
``event.myext``) and ``event.data`` is the parsed JSON payload (the raw string otherwise)::

    compile_expression('event.type == "chat.message" && event.data.toxicity > 0.8').match(event)

The expression compiles once, when the filter is built; an invalid one raises
:class:`~knray.errors.CELCompileError`. Any evaluation error (missing field, type mismatch, a
result that is not a boolean) means no match. Three runtimes can evaluate it: see
:data:`BACKENDS`; the argument, else ``$KNRAY_CEL_BACKEND``, else :data:`DEFAULT_BACKEND` picks one.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from collections.abc import Callable
from typing import Any, Final

from knray.cel.activation import ActivationBuilder, activation_builder
from knray.cel.backend import CELBackend, CELProgram
from knray.cel.references import analyze
from knray.errors import CELCompileError
from knray.events import CloudEvent

__all__ = [
    "BACKENDS",
    "BACKEND_ENV_VAR",
    "DEFAULT_BACKEND",
    "CELBackend",
    "CELExpression",
    "CELProgram",
    "compile_expression",
    "get_backend",
]

# Backend name -> (module, attribute). Modules are imported on first use only.
_REGISTRY: Final[dict[str, tuple[str, str]]] = {
    "cel-expr-python": ("knray.cel.cel_expr_python", "BACKEND"),
    "common-expression-language": ("knray.cel.common_expression_language", "BACKEND"),
    "cel-python": ("knray.cel.cel_python", "BACKEND"),
    "cel-python-interpreted": ("knray.cel.cel_python", "INTERPRETED_BACKEND"),
}
BACKENDS: Final = tuple(_REGISTRY)
"""Every valid backend name."""
DEFAULT_BACKEND: Final = "cel-expr-python"
"""The fastest backend that passes the whole semantics suite (see ``bench/cel_backends.py``)."""
BACKEND_ENV_VAR: Final = "KNRAY_CEL_BACKEND"
"""Environment variable naming the backend when the caller does not."""

_loaded: dict[str, CELBackend] = {}
_load_lock = threading.Lock()


def get_backend(name: str | None = None) -> CELBackend:
    """The backend called ``name``, else the one ``$KNRAY_CEL_BACKEND`` names, else the default.

    Raises ValueError for an unknown name, listing the valid ones.
    """
    origin = repr(name)
    if name is None:
        chosen = os.environ.get(BACKEND_ENV_VAR, "").strip()
        name = chosen or DEFAULT_BACKEND
        origin = f"{name!r} (from {BACKEND_ENV_VAR})" if chosen else repr(name)
    backend = _loaded.get(name)
    if backend is not None:
        return backend
    target = _REGISTRY.get(name)
    if target is None:
        raise ValueError(f"unknown CEL backend {origin}; valid backends: {', '.join(BACKENDS)}")
    module_name, attribute = target
    with _load_lock:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ImportError(
                f"CEL backend {name!r} cannot be loaded ({error}); install it or choose "
                f"another with {BACKEND_ENV_VAR} (valid backends: {', '.join(BACKENDS)})"
            ) from error
        loaded: CELBackend = getattr(module, attribute)
        _loaded[name] = loaded
    return loaded


@functools.lru_cache(maxsize=1024)
def _compile(
    backend: str, expression: str
) -> tuple[ActivationBuilder, Callable[[dict[str, Any]], bool]]:
    # Programs are immutable and thread-safe, so filters with the same expression share one.
    references = analyze(expression)
    program = get_backend(backend).compile(expression, references)
    return activation_builder(references.projection), program.matches


class CELExpression:
    """A compiled CEL expression over the variable ``event`` (Dapr's CEL routing variables).

    Compiles at construction (:class:`~knray.errors.CELCompileError` when the expression is
    invalid); ``match`` is True only when the expression evaluates to boolean true and never
    raises. Safe to share between threads.
    """

    __slots__ = ("_backend", "_build", "_expression", "_matches")

    def __init__(self, expression: str, backend: str | None = None) -> None:
        if not isinstance(expression, str) or not expression.strip():
            raise CELCompileError("a CEL filter expression must be a non-empty string")
        implementation = get_backend(backend)
        self._expression = expression
        self._backend = implementation.name
        self._build, self._matches = _compile(implementation.name, expression)

    @property
    def expression(self) -> str:
        """The CEL source, as given."""
        return self._expression

    @property
    def backend(self) -> str:
        """The name of the backend evaluating this filter."""
        return self._backend

    def match(self, event: CloudEvent) -> bool:
        """True when the expression evaluates to true for ``event``; any error is no match."""
        try:
            return self._matches(self._build(event))
        except Exception:
            return False

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled programs do not pickle; Ray ships filters to dispatchers, which recompile.
        return (CELExpression, (self._expression, self._backend))

    def __repr__(self) -> str:
        return f"CELExpression({self._expression!r}, backend={self._backend!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CELExpression):
            return NotImplemented
        return (self._expression, self._backend) == (other._expression, other._backend)

    def __hash__(self) -> int:
        return hash((self._expression, self._backend))


def compile_expression(expression: str, backend: str | None = None) -> CELExpression:
    """Compile ``expression`` once; raises CELCompileError when it is invalid."""
    return CELExpression(expression, backend)

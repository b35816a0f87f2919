"""CEL backend on ``cel-python`` (module ``celpy``): a pure-Python CEL implementation.

Two runners: the compiled one (celpy transpiles the expression to Python, backend name
``cel-python``) and the tree-walking interpreter (``cel-python-interpreted``), much slower.
celpy has no type checker: undeclared variables and functions outside the CEL standard library
are rejected at compile time from the expression's tokens; static type errors surface at
evaluation, meaning no match.

celpy 0.5 quirks handled here: its compiled runner keeps the running program's state in the
``celpy.evaluation`` module globals, so compiled evaluations are serialised by one lock; it logs
every evaluation error at ERROR level, which is silenced per program; its parser is a process-wide
singleton whose tree class is fixed by the first ``Environment`` created, and the compiled runner
needs ``TranspilerTree`` nodes (a subclass the interpreter also accepts), so the singleton is
rebuilt with that class when needed, the way celpy documents (``CELParser.CEL_PARSER = None``).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Final

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParser
from celpy.evaluation import TranspilerTree

from knray.cel.references import References, undeclared_reference
from knray.errors import CELCompileError

__all__ = [
    "BACKEND",
    "INTERPRETED_BACKEND",
    "CelPythonBackend",
    "CelPythonProgram",
    "to_cel",
]

# Serialises compiling (the shared parser) and compiled evaluation (celpy's module globals).
_LOCK: Final = threading.Lock()
# Not attached to the logging hierarchy and above CRITICAL: evaluation errors mean "no match".
_SILENT: Final = logging.Logger("knray.cel.cel_python.silent", logging.CRITICAL + 1)

_StringType: Final = celtypes.StringType
_IntType: Final = celtypes.IntType
_DoubleType: Final = celtypes.DoubleType
_BoolType: Final = celtypes.BoolType
_BytesType: Final = celtypes.BytesType
_MapType: Final = celtypes.MapType
_ListType: Final = celtypes.ListType


def to_cel(value: Any) -> Any:
    """Convert a plain Python value (JSON-like, plus bytes) to celpy's CEL types."""
    kind = type(value)
    if kind is str:
        return _StringType(value)
    if kind is dict:
        return _MapType({to_cel(key): to_cel(item) for key, item in value.items()})
    if kind is bool:
        return _BoolType(value)
    if kind is int:
        return _IntType(value)
    if kind is float:
        return _DoubleType(value)
    if value is None:
        return None
    if kind is list or kind is tuple:
        return _ListType([to_cel(item) for item in value])
    if kind is bytes:
        return _BytesType(value)
    return json_to_cel(value)


class CelPythonProgram:
    """A celpy runner; compiled runners evaluate under the module lock."""

    __slots__ = ("_evaluate", "_locked")

    def __init__(self, runner: Any, *, locked: bool) -> None:
        self._evaluate = runner.evaluate
        self._locked = locked

    def matches(self, variables: dict[str, Any]) -> bool:
        context = {name: to_cel(value) for name, value in variables.items()}
        if self._locked:
            with _LOCK:
                result = self._evaluate(context)
        else:
            result = self._evaluate(context)
        return result is True or (type(result) is _BoolType and bool(result))


def _ensure_transpiler_parser() -> None:
    parser = CELParser.CEL_PARSER
    tree_class = None if parser is None else parser.options.tree_class
    if not (isinstance(tree_class, type) and issubclass(tree_class, TranspilerTree)):
        CELParser.CEL_PARSER = None
        CELParser(tree_class=TranspilerTree)


class CelPythonBackend:
    """celpy with the compiled (transpiled) runner, or with the interpreter."""

    def __init__(self, *, compiled: bool = True) -> None:
        self._compiled = compiled
        self._environment: Any = None

    @property
    def name(self) -> str:
        return "cel-python" if self._compiled else "cel-python-interpreted"

    def compile(self, expression: str, references: References) -> CelPythonProgram:
        with _LOCK:
            _ensure_transpiler_parser()
            if self._environment is None:
                limit = sys.getrecursionlimit()
                # Both runners parse with TranspilerTree so the shared parser suits both.
                self._environment = celpy.Environment(runner_class=celpy.CompiledRunner)
                self._environment.runner_class = (
                    celpy.CompiledRunner if self._compiled else celpy.InterpretedRunner
                )
                # celpy sets the limit to 2500; never lower the process's limit.
                sys.setrecursionlimit(max(limit, sys.getrecursionlimit()))
            try:
                runner: Any = self._environment.program(self._environment.compile(expression))
            except Exception as error:
                raise CELCompileError(str(error)) from None
        problem = undeclared_reference(references)
        if problem is not None:
            raise CELCompileError(problem)
        if self._compiled:
            runner.tp.logger = _SILENT
        runner.logger = _SILENT
        return CelPythonProgram(runner, locked=self._compiled)


BACKEND = CelPythonBackend(compiled=True)
INTERPRETED_BACKEND = CelPythonBackend(compiled=False)

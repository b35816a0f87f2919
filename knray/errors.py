"""The knray exception tree.

Every error knray raises derives from :class:`KnrayError`. Each leaf also subclasses the builtin
that a caller not knowing knray would catch (``ValueError`` for bad input, ``LookupError`` for
something missing, ``ArithmeticError`` for maths), as the ``cloudevents`` SDK does::

    KnrayError
    ├── InvalidEventError (ValueError)            an event breaks the CloudEvents spec
    ├── ManifestError (ValueError)                a manifest has bad fields; lists every path
    ├── CELCompileError (ValueError)              a CEL filter expression does not compile
    └── CESQLError                                CloudEvents SQL (spec section 3.3 error kinds)
        ├── CESQLParseError (ValueError)              kind "parse"
        ├── CESQLMathError (ArithmeticError)          kind "math"
        ├── CESQLCastError (ValueError)               kind "cast"
        ├── CESQLMissingFunctionError (LookupError)   kind "missingFunction"
        ├── CESQLFunctionEvaluationError (ValueError) kind "functionEvaluation"
        └── CESQLMissingAttributeError (LookupError)  kind "missingAttribute"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CELCompileError",
    "CESQLCastError",
    "CESQLError",
    "CESQLFunctionEvaluationError",
    "CESQLMathError",
    "CESQLMissingAttributeError",
    "CESQLMissingFunctionError",
    "CESQLParseError",
    "FieldProblem",
    "InvalidEventError",
    "KnrayError",
    "ManifestError",
    "ManifestWarning",
]


class KnrayError(Exception):
    """Base class of every error raised by knray."""


class InvalidEventError(KnrayError, ValueError):
    """An event is not a valid CloudEvent; ``attribute`` names the offending attribute."""

    def __init__(self, message: str, *, attribute: str | None = None) -> None:
        super().__init__(message)
        self.attribute = attribute


@dataclass(frozen=True)
class FieldProblem:
    """One bad field of a manifest: a path such as ``spec.filters[1].cesql`` and what is wrong.

    ``location`` says which document holds it (``configs/app.yaml#2 Trigger/default/moderate``).
    """

    path: str
    message: str
    location: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{self.location}: {text}" if self.location else text


class ManifestError(KnrayError, ValueError):
    """A manifest is invalid. ``problems`` lists every bad field with its path."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems: tuple[FieldProblem, ...] = tuple(problems)
        lines = [str(problem) for problem in self.problems]
        super().__init__("\n".join(lines) if lines else "invalid manifest")

    @property
    def paths(self) -> list[str]:
        """The field paths of every problem, in order."""
        return [problem.path for problem in self.problems]


class ManifestWarning(UserWarning):
    """A manifest uses something knray accepts but does not implement (an annotation, a class)."""

    def __init__(self, problem: FieldProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class CELCompileError(KnrayError, ValueError):
    """A CEL expression does not compile (syntax, unknown function, wrong types)."""


class CESQLError(KnrayError):
    """A CloudEvents SQL error; ``kind`` is the spec's name for it (cesql/spec.md section 3.3)."""

    kind: str = "generic"


class CESQLParseError(CESQLError, ValueError):
    """The expression is not valid CloudEvents SQL; ``position`` is the 0-based offset if known."""

    kind = "parse"

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class CESQLMathError(CESQLError, ArithmeticError):
    """Division or modulo by zero, or an integer overflow."""

    kind = "math"


class CESQLCastError(CESQLError, ValueError):
    """A value cannot be cast to the type an operator or function needs."""

    kind = "cast"


class CESQLMissingFunctionError(CESQLError, LookupError):
    """The expression calls a function that does not exist with that arity."""

    kind = "missingFunction"


class CESQLFunctionEvaluationError(CESQLError, ValueError):
    """A built-in function failed on its arguments (for example a negative length)."""

    kind = "functionEvaluation"


class CESQLMissingAttributeError(CESQLError, LookupError):
    """The expression reads an attribute the event does not have."""

    kind = "missingAttribute"

"""Built-in CESQL functions (cesql/spec.md section 3.5) and the registry that resolves calls.

A new function is one :class:`Function` entry in ``_BUILTINS`` (or, for user code,
``BUILTIN_FUNCTIONS.extend(Function(...))``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from knray.cesql.types import (
    INT32_MAX,
    INT32_MIN,
    Result,
    Type,
    Value,
    cast_explicit,
    to_bool,
    to_int,
)
from knray.errors import CESQLFunctionEvaluationError, CESQLMathError

__all__ = ["BUILTIN_FUNCTIONS", "Function", "FunctionRegistry"]

Implementation = Callable[[Sequence[Value]], Result]
"""Gets the arguments already cast to the parameter types; returns (value, error or None)."""

# Section 2.4: function-identifier ::= char ( "_" | char )*.
_NAME: Final = re.compile(r"[A-Za-z][A-Za-z_]*")
# Section 3.5.1 TRIM: Unicode White_Space characters only (Python's str.strip() would also
# remove the control characters U+001C..U+001F, which the spec says to keep).
_WHITESPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


@dataclass(frozen=True, slots=True)
class Function:
    """A function signature and its implementation.

    ``parameters`` are the fixed parameter types; ``variadic`` (if set) is the type of any
    further arguments. Arguments are cast to these types before ``implementation`` runs
    (section 3.7); ANY leaves an argument as it is.
    """

    name: str
    parameters: tuple[Type, ...]
    returns: Type
    implementation: Implementation
    variadic: Type | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"invalid CESQL function name {self.name!r} (letters and '_')")
        object.__setattr__(self, "name", self.name.upper())

    @property
    def signature(self) -> str:
        """For messages, e.g. ``CONCAT_WS(String, String...)``."""
        types = [parameter.value for parameter in self.parameters]
        if self.variadic is not None:
            types.append(f"{self.variadic.value}...")
        return f"{self.name}({', '.join(types)})"


class FunctionRegistry:
    """An immutable set of functions, resolved by name (case-insensitive) and arity.

    Enforces section 3.5: one definition per name and arity, and at most one variadic
    definition per name whose fixed parameters outnumber every other definition's.
    """

    __slots__ = ("_fixed", "_functions", "_variadic")

    def __init__(self, functions: Iterable[Function] = ()) -> None:
        self._functions: tuple[Function, ...] = ()
        self._fixed: dict[tuple[str, int], Function] = {}
        self._variadic: dict[str, Function] = {}
        for function in functions:
            self._add(function)

    def _add(self, function: Function) -> None:
        name = function.name
        arity = len(function.parameters)
        variadic = self._variadic.get(name)
        if function.variadic is None:
            if (name, arity) in self._fixed:
                raise ValueError(f"{function.signature}: {name} already takes {arity} arguments")
            if variadic is not None and arity >= len(variadic.parameters):
                raise ValueError(f"{function.signature} is ambiguous with {variadic.signature}")
            self._fixed[(name, arity)] = function
        else:
            if variadic is not None:
                raise ValueError(f"{function.signature}: {name} already has a variadic form")
            longest = max((n for (other, n) in self._fixed if other == name), default=-1)
            if arity <= longest:
                raise ValueError(
                    f"{function.signature}: a variadic form needs more fixed parameters "
                    f"than the {longest} of another {name} definition"
                )
            self._variadic[name] = function
        self._functions = (*self._functions, function)

    def extend(self, *functions: Function) -> FunctionRegistry:
        """A new registry with these functions added."""
        return FunctionRegistry((*self._functions, *functions))

    def resolve(self, name: str, arity: int) -> Function | None:
        """The function a call ``name(...)`` with ``arity`` arguments dispatches to, or None."""
        upper = name.upper()
        function = self._fixed.get((upper, arity))
        if function is not None:
            return function
        variadic = self._variadic.get(upper)
        if variadic is not None and arity >= len(variadic.parameters):
            return variadic
        return None

    def overloads(self, name: str) -> list[Function]:
        """Every definition of ``name``."""
        upper = name.upper()
        return [function for function in self._functions if function.name == upper]

    def __iter__(self) -> Iterator[Function]:
        return iter(self._functions)

    def __len__(self) -> int:
        return len(self._functions)

    def __repr__(self) -> str:
        return f"FunctionRegistry({len(self._functions)} functions)"


# --- section 3.5.1: string manipulation ----------------------------------------------------
def _length(args: Sequence[Value]) -> Result:
    text = args[0]
    assert isinstance(text, str)
    return len(text), None  # characters (code points), not bytes


def _concat(args: Sequence[Value]) -> Result:
    return "".join(str(arg) for arg in args), None


def _concat_ws(args: Sequence[Value]) -> Result:
    return str(args[0]).join(str(arg) for arg in args[1:]), None


def _lower(args: Sequence[Value]) -> Result:
    return str(args[0]).lower(), None


def _upper(args: Sequence[Value]) -> Result:
    return str(args[0]).upper(), None


def _trim(args: Sequence[Value]) -> Result:
    return str(args[0]).strip(_WHITESPACE), None


def _left(args: Sequence[Value]) -> Result:
    text, count = str(args[0]), int(args[1])
    if count < 0:
        return text, CESQLFunctionEvaluationError(f"LEFT: negative length {count}")
    return text[:count], None


def _right(args: Sequence[Value]) -> Result:
    text, count = str(args[0]), int(args[1])
    if count < 0:
        return text, CESQLFunctionEvaluationError(f"RIGHT: negative length {count}")
    return text[max(len(text) - count, 0) :], None


def _substring_start(text: str, position: int) -> int | CESQLFunctionEvaluationError:
    # Positions count from 1; a negative position counts from the end.
    if position > len(text) or position < -len(text):
        return CESQLFunctionEvaluationError(
            f"SUBSTRING: position {position} is outside a string of length {len(text)}"
        )
    return position - 1 if position > 0 else len(text) + position


def _substring(args: Sequence[Value]) -> Result:
    text, position = str(args[0]), int(args[1])
    start = _substring_start(text, position)
    if isinstance(start, CESQLFunctionEvaluationError):
        return "", start
    return ("" if position == 0 else text[start:]), None


def _substring_length(args: Sequence[Value]) -> Result:
    text, position, length = str(args[0]), int(args[1]), int(args[2])
    start = _substring_start(text, position)
    if isinstance(start, CESQLFunctionEvaluationError):
        return "", start
    if length < 0:
        return "", CESQLFunctionEvaluationError(f"SUBSTRING: negative length {length}")
    return ("" if position == 0 else text[start : start + length]), None


# --- section 3.5.2: math -------------------------------------------------------------------
def _abs(args: Sequence[Value]) -> Result:
    number = int(args[0])
    if number == INT32_MIN:
        return INT32_MAX, CESQLMathError(f"ABS({number}) overflows a 32-bit integer")
    return abs(number), None


# --- section 3.7: explicit casts (and sdk-go's IS_INT / IS_BOOL) ----------------------------
def _int(args: Sequence[Value]) -> Result:
    return cast_explicit(args[0], Type.INTEGER)


def _bool(args: Sequence[Value]) -> Result:
    return cast_explicit(args[0], Type.BOOLEAN)


def _string(args: Sequence[Value]) -> Result:
    return cast_explicit(args[0], Type.STRING)


def _is_int(args: Sequence[Value]) -> Result:
    return to_int(args[0])[1] is None, None


def _is_bool(args: Sequence[Value]) -> Result:
    return to_bool(args[0])[1] is None, None


_S, _I, _B, _ANY = Type.STRING, Type.INTEGER, Type.BOOLEAN, Type.ANY

_BUILTINS: Final = (
    Function("LENGTH", (_S,), _I, _length),
    Function("CONCAT", (), _S, _concat, variadic=_S),
    Function("CONCAT_WS", (_S,), _S, _concat_ws, variadic=_S),
    Function("LOWER", (_S,), _S, _lower),
    Function("UPPER", (_S,), _S, _upper),
    Function("TRIM", (_S,), _S, _trim),
    Function("LEFT", (_S, _I), _S, _left),
    Function("RIGHT", (_S, _I), _S, _right),
    Function("SUBSTRING", (_S, _I), _S, _substring),
    Function("SUBSTRING", (_S, _I, _I), _S, _substring_length),
    Function("ABS", (_I,), _I, _abs),
    Function("INT", (_ANY,), _I, _int),
    Function("BOOL", (_ANY,), _B, _bool),
    Function("STRING", (_ANY,), _S, _string),
    Function("IS_INT", (_ANY,), _B, _is_int),
    Function("IS_BOOL", (_ANY,), _B, _is_bool),
)

BUILTIN_FUNCTIONS: Final = FunctionRegistry(_BUILTINS)
"""The functions every CESQL engine has (section 3.5), plus sdk-go's IS_INT and IS_BOOL."""

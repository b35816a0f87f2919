"""CESQL types, zero values and the casting rules (cesql/spec.md sections 3.1, 3.2 and 3.7)."""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, TypeAlias

from knray.errors import CESQLCastError, CESQLError

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "Result",
    "Type",
    "Value",
    "attribute_value",
    "cast",
    "cast_explicit",
    "caster",
    "to_bool",
    "to_bool_explicit",
    "to_int",
    "to_str",
    "type_of",
]

Value: TypeAlias = bool | int | str
"""A CESQL value: Boolean, Integer (32-bit signed) or String."""

Result: TypeAlias = tuple[Value, CESQLError | None]
"""What evaluating (part of) an expression gives: a value and the first error, if any."""

# Section 3.1: Integer is a signed 32-bit two's-complement number.
INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1

# Section 3.7 "String -> Integer": base 10, an optional leading sign, ASCII digits only.
_INTEGER_TEXT: Final = re.compile(r"[+-]?[0-9]+")


class Type(enum.Enum):
    """The CESQL primitive types (section 3.1); ANY is a parameter that takes every type."""

    BOOLEAN = "Boolean"
    INTEGER = "Integer"
    STRING = "String"
    ANY = "Any"

    @property
    def zero(self) -> Value:
        """The zero value of the type (section 3.1); ANY falls back to Boolean (section 3.2)."""
        return _ZERO[self]


_ZERO: Final[dict[Type, Value]] = {
    Type.BOOLEAN: False,
    Type.INTEGER: 0,
    Type.STRING: "",
    Type.ANY: False,
}


def type_of(value: Value) -> Type:
    """The CESQL type of a Python value (``bool`` is checked before ``int``)."""
    cls = value.__class__
    if cls is str:
        return Type.STRING
    if cls is bool:
        return Type.BOOLEAN
    return Type.INTEGER


def _describe(value: Value) -> str:
    if value.__class__ is bool:
        return "Boolean true" if value else "Boolean false"
    if value.__class__ is int:
        return f"Integer {value}"
    return f"String {value!r}"


def to_str(value: Value) -> Result:
    """Cast to String (section 3.7): never fails."""
    cls = value.__class__
    if cls is str:
        return value, None
    if cls is bool:
        return ("true" if value else "false"), None
    return str(value), None


def to_int(value: Value) -> Result:
    """Cast to Integer (section 3.7); a failed cast gives 0 and a CESQLCastError."""
    cls = value.__class__
    if cls is int:
        return value, None
    if cls is bool:
        return (1 if value else 0), None
    assert isinstance(value, str)
    if _INTEGER_TEXT.fullmatch(value):
        number = int(value)
        if INT32_MIN <= number <= INT32_MAX:
            return number, None
        return 0, CESQLCastError(f"cannot cast {_describe(value)} to Integer: out of 32-bit range")
    return 0, CESQLCastError(f"cannot cast {_describe(value)} to Integer")


def to_bool(value: Value) -> Result:
    """Implicit cast to Boolean, as operators and function parameters do it.

    Section 3.7 lists Integer -> Boolean, but the TCK (``not_operator.yaml``, "Invalid int
    cast": ``NOT 10`` is ``true`` plus a cast error) makes the *implicit* cast from Integer fail;
    only ``BOOL()`` converts integers (see :func:`to_bool_explicit`).
    """
    cls = value.__class__
    if cls is bool:
        return value, None
    if cls is str:
        assert isinstance(value, str)
        lowered = value.lower()
        if lowered == "true":
            return True, None
        if lowered == "false":
            return False, None
        return False, CESQLCastError(f"cannot cast {_describe(value)} to Boolean")
    return False, CESQLCastError(
        f"cannot implicitly cast {_describe(value)} to Boolean (use BOOL())"
    )


def to_bool_explicit(value: Value) -> Result:
    """Cast to Boolean as ``BOOL()`` does (section 3.7): Integer 0 is false, others true."""
    if value.__class__ is int:
        return value != 0, None
    return to_bool(value)


_IMPLICIT: Final[dict[Type, Callable[[Value], Result]]] = {
    Type.BOOLEAN: to_bool,
    Type.INTEGER: to_int,
    Type.STRING: to_str,
}


def cast(value: Value, target: Type) -> Result:
    """Implicit cast of ``value`` to ``target`` (ANY leaves it alone)."""
    if target is Type.ANY:
        return value, None
    return _IMPLICIT[target](value)


def cast_explicit(value: Value, target: Type) -> Result:
    """Explicit cast, as the ``INT``, ``BOOL`` and ``STRING`` functions do it."""
    if target is Type.BOOLEAN:
        return to_bool_explicit(value)
    return cast(value, target)


def caster(target: Type) -> Callable[[Value], Result] | None:
    """The implicit cast function for ``target``, or None for ANY."""
    return None if target is Type.ANY else _IMPLICIT[target]


def attribute_value(value: Any) -> Value:
    """An attribute value as a CESQL value (section 3.2).

    Booleans, integers and strings keep their type; anything else is represented as a String,
    using the CloudEvents canonical string encoding (Binary as base64, Timestamp as RFC 3339).
    """
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return str(value)

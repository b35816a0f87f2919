"""CESQL evaluation beyond the TCK: 32-bit integers, casts, errors, Unicode, attribute types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from knray import CloudEvent
from knray.cesql import evaluate
from knray.cesql.types import Value


def make_event(**extra: Any) -> CloudEvent:
    attributes = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "https://example.com/chat",
        "type": "com.example.message",
    }
    attributes.update(extra)
    return CloudEvent(attributes)


EVENT = make_event(
    exint=42,
    exbool=True,
    exstring="exstring",
    exbinary=bytes([0, 1, 2, 3]),
    extime=datetime(2020, 3, 21, 12, 34, 56, 780000, tzinfo=UTC),
    exzoned=datetime(2020, 3, 21, 12, 34, 56, tzinfo=timezone(timedelta(hours=2))),
    time="2018-04-26T14:48:09+02:00",
    seq="7",
)


def value_and_kind(expression: str, event: Any = EVENT) -> tuple[Value, str | None]:
    value, error = evaluate(expression, event)
    return value, None if error is None else error.kind


def same(actual: tuple[Value, str | None], expected: tuple[Value, str | None]) -> bool:
    return type(actual[0]) is type(expected[0]) and actual == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # Section 3.1: Integers are 32-bit; overflow wraps (two's complement) with a MathError.
        ("2147483647 + 1", (-2147483648, "math")),
        ("-2147483648 - 1", (2147483647, "math")),
        ("65536 * 65536", (0, "math")),
        ("-2147483648 / -1", (-2147483648, "math")),
        ("-(-2147483648)", (-2147483648, "math")),
        ("-2147483648 % -1", (0, None)),
        ("exint + 2147483647", (-2147483607, "math")),
        ("ABS(-2147483647)", (2147483647, None)),
        # Section 3.4.2: truncated division; the remainder has the dividend's sign.
        ("-7 / 2", (-3, None)),
        ("7 / -2", (-3, None)),
        ("-7 % 2", (-1, None)),
        ("7 % -2", (1, None)),
        ("-7 % -2", (-1, None)),
        ("0 / 5", (0, None)),
    ],
)
def test_integer_arithmetic(expression: str, expected: tuple[Value, str | None]) -> None:
    assert same(value_and_kind(expression), expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("INT('+5')", (5, None)),
        ("INT('-0')", (0, None)),
        ("INT('2147483647')", (2147483647, None)),
        ("INT('2147483648')", (0, "cast")),
        ("INT(' 1')", (0, "cast")),
        ("INT('1 ')", (0, "cast")),
        ("INT('1_000')", (0, "cast")),
        ("INT('\u0661')", (0, "cast")),  # ARABIC-INDIC DIGIT ONE is not a base-10 ASCII digit
        ("INT('')", (0, "cast")),
        ("BOOL('tRuE')", (True, None)),
        ("BOOL('yes')", (False, "cast")),
        ("STRING(-0)", ("0", None)),
        ("IS_INT('12')", (True, None)),
        ("IS_INT('x')", (False, None)),
        ("IS_BOOL('FALSE')", (True, None)),
        ("IS_BOOL(1)", (False, None)),
        # Implicit casts (section 3.7): operands become the operator's parameter types.
        ("seq + 1", (8, None)),
        ("seq > 5", (True, None)),
        ("'10' < '9'", (False, None)),  # ordering is numeric, never lexicographic
        ("exint = '42'", (True, None)),  # = casts the left side to the right side's type
        ("'42' = exint", (True, None)),
        ("exbool = 'TRUE'", (False, None)),  # true -> 'true', compared case-sensitively
        ("'TRUE' = exbool", (True, None)),
        ("TRUE AND 'true'", (True, None)),
        ("ABS('-5')", (5, None)),
        ("LENGTH(12345)", (5, None)),
        ("CONCAT(1, TRUE, 'x')", ("1truex", None)),
        # A failed implicit cast gives the target type's zero value; the operator still runs.
        ("'abc' + 1", (1, "cast")),
        ("1 AND TRUE", (False, "cast")),
        ("NOT 0", (True, "cast")),
        ("'abc' = 5", (False, "cast")),
        ("LEFT('abc', 'x')", ("", "cast")),
        ("-'x'", (0, "cast")),
        ("'x' XOR TRUE", (True, "cast")),
    ],
)
def test_casts(expression: str, expected: tuple[Value, str | None]) -> None:
    assert same(value_and_kind(expression), expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # Section 3.2: an operand error gives the zero value of the operator's return type.
        ("missing + 1", (0, "missingAttribute")),
        ("LENGTH(missing)", (0, "missingAttribute")),
        ("UPPER(missing)", ("", "missingAttribute")),
        ("missing", (False, "missingAttribute")),
        ("missing IN ('a')", (False, "missingAttribute")),
        ("missing NOT IN ('a')", (False, "missingAttribute")),
        ("missing NOT LIKE 'a'", (False, "missingAttribute")),
        ("NOT (1 / 0 = 0)", (False, "math")),
        ("NOSUCH(1)", (False, "missingFunction")),
        ("NOSUCH(1) + 1", (0, "missingFunction")),
        ("LENGTH(NOSUCH())", (0, "missingFunction")),
        # The first error wins.
        ("missing1 + missing2", (0, "missingAttribute")),
        ("(1 / 0) + missing", (0, "math")),
        ("INT('x') / 0", (0, "cast")),
        # Section 3.4.2: AND / OR short-circuit, so later errors are never seen.
        ("FALSE AND missing", (False, None)),
        ("TRUE OR missing", (True, None)),
        ("FALSE AND NOSUCH()", (False, None)),
        ("TRUE AND missing", (False, "missingAttribute")),
        ("FALSE OR missing", (False, "missingAttribute")),
        ("missing OR TRUE", (False, "missingAttribute")),
        ("FALSE OR FALSE OR TRUE", (True, None)),
        ("TRUE AND TRUE AND 'true'", (True, None)),
        ("'nope' OR TRUE", (True, "cast")),
        ("FALSE OR 'nope' OR TRUE", (False, "cast")),
        # IN stops at the first match, like a chain of OR.
        ("'a' IN ('a', missing)", (True, None)),
        ("'b' IN ('a', missing)", (False, "missingAttribute")),
        ("'b' NOT IN ('a', 'c')", (True, None)),
        ("1 IN ('x', 1)", (True, "cast")),
        ("exint IN (41, '42')", (True, None)),
        ("exint IN (type, 42)", (True, "cast")),
        ("type IN (type)", (True, None)),
        # XOR has no short-circuit.
        ("TRUE XOR missing", (False, "missingAttribute")),
        # Section 3.5.1 functions at their edges.
        ("SUBSTRING('abc', 0, -1)", ("", "functionEvaluation")),
        ("SUBSTRING('abc', -1, 5)", ("c", None)),
        ("SUBSTRING('abc', 3)", ("c", None)),
        ("SUBSTRING('', 0)", ("", None)),
        ("RIGHT('abc', 0)", ("", None)),
        ("LEFT('abc', 0)", ("", None)),
        ("CONCAT_WS(', ', 'a', 1, TRUE)", ("a, 1, true", None)),
    ],
)
def test_errors_and_short_circuit(expression: str, expected: tuple[Value, str | None]) -> None:
    assert same(value_and_kind(expression), expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("LENGTH('héllo')", 5),
        ("LENGTH('👍')", 1),  # characters, not UTF-8 bytes
        ("LENGTH('日本語')", 3),
        ("LEFT('日本語', 2)", "日本"),
        ("RIGHT('日本語', 1)", "語"),
        ("SUBSTRING('añb👍c', -2)", "👍c"),
        ("UPPER('straße')", "STRASSE"),
        ("LOWER('ÀÉÎ')", "àéî"),
        ("TRIM('\u3000\u00a0a b\u2003\n')", "a b"),  # Unicode white space is trimmed
        ("TRIM('\x1fa\x1c')", "\x1fa\x1c"),  # control characters are not white space
        ("'ü' = 'ü'", True),
        ("'é' = 'e\u0301'", False),  # no normalisation: code points are compared
    ],
)
def test_unicode(expression: str, expected: Value) -> None:
    assert same(value_and_kind(expression), (expected, None))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # Section 3.2: Boolean and Integer extensions keep their type; other types are Strings.
        ("exint", 42),
        ("exbool", True),
        ("exbinary", "AAECAw=="),  # Binary: base64, the CloudEvents canonical string form
        ("extime", "2020-03-21T12:34:56.780000Z"),
        ("exzoned", "2020-03-21T12:34:56+02:00"),
        ("time", "2018-04-26T14:48:09+02:00"),  # a string time is kept exactly as it came
        ("exbinary LIKE 'AAEC%'", True),
        ("EXISTS exbinary", True),
        ("EXISTS nothing", False),
        ("EXISTS ID", True),
    ],
)
def test_attribute_values(expression: str, expected: Value) -> None:
    assert same(value_and_kind(expression), (expected, None))


def test_identifiers_are_lowercased_before_lookup() -> None:
    assert value_and_kind("EXSTRING") == ("exstring", None)
    assert value_and_kind("Type = 'com.example.message'") == (True, None)


def test_plain_mappings_work_as_events() -> None:
    attributes = {"type": "t", "n": 3, "gone": None}
    assert value_and_kind("type = 't' AND n * 2 = 6", attributes) == (True, None)
    assert value_and_kind("gone", attributes) == (False, "missingAttribute")
    assert value_and_kind("EXISTS gone", attributes) == (False, None)


def test_errors_carry_a_readable_message() -> None:
    _, error = evaluate("x = 1", EVENT)
    assert error is not None
    assert "'x'" in str(error)
    assert "position 0" in str(error)
    _, error = evaluate("LEFT('a', 1, 2)", EVENT)
    assert error is not None
    assert "LEFT(String, Integer)" in str(error)

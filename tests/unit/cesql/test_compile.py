"""compile(), matches() filter semantics, validate(), custom functions and reuse."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from knray import CloudEvent
from knray.cesql import (
    BUILTIN_FUNCTIONS,
    CompiledExpression,
    Function,
    FunctionRegistry,
    Result,
    Type,
    Value,
    compile,
    evaluate,
    parse,
    validate,
)
from knray.errors import CESQLMissingFunctionError, CESQLParseError


def make_event(**extra: Any) -> CloudEvent:
    attributes = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "https://example.com/chat",
        "type": "com.example.message",
    }
    attributes.update(extra)
    return CloudEvent(attributes)


EVENT = make_event(exint=42, zero=0, yes="TRUE", no="false", word="maybe")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("type LIKE 'com.example.%' AND source = 'https://example.com/chat'", True),
        ("type LIKE 'org.%'", False),
        # Any error means no match (section 1.2), whatever the value.
        ("missing = 'x'", False),
        ("NOT missing", False),
        ("NOT 10", False),  # true, but with a cast error
        ("TRUE OR 1 / 0 = 0", True),  # short-circuit: the error is never raised
        ("FALSE OR 1 / 0 = 0", False),
        ("NOSUCH(type)", False),
        # Section 1.2: a result that is not a Boolean never passes, whatever its value.
        ("exint", False),
        ("zero", False),
        ("yes", False),
        ("no", False),
        ("word", False),
        ("'TRUE'", False),
        ("''", False),
        ("1 + 1", False),
        ("1 - 1", False),
        ("BOOL(yes)", True),
        ("BOOL(no)", False),
    ],
)
def test_matches(expression: str, expected: bool) -> None:
    assert compile(expression).matches(EVENT) is expected


def test_compiled_expression_keeps_its_source_and_tree() -> None:
    text = "type = 'a' OR exint > 1"
    compiled = compile(text)
    assert isinstance(compiled, CompiledExpression)
    assert compiled.expression == text
    assert compiled.ast == parse(text)
    assert text in repr(compiled)


def test_compile_accepts_a_tree() -> None:
    tree = parse("(type LIKE 'com.%') AND NOT (exint < 10)")
    compiled = compile(tree)
    assert compiled.matches(EVENT) is True
    assert parse(compiled.expression) == tree
    assert evaluate(tree, EVENT) == (True, None)


def test_one_compiled_expression_serves_many_events() -> None:
    compiled = compile("INT(seq) % 3 = 0 AND type IN ('a', 'b')")
    events = [make_event(seq=str(n), type="ab"[n % 2]) for n in range(300)]
    expected = [n % 3 == 0 for n in range(300)]
    assert [compiled.matches(event) for event in events] == expected
    # Same answers again: evaluation keeps no state between events.
    assert [compiled.matches(event) for event in events] == expected
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(compiled.matches, events)) == expected


def test_compile_errors_are_parse_errors() -> None:
    with pytest.raises(CESQLParseError) as caught:
        compile("type = ")
    assert caught.value.position == 7
    with pytest.raises(CESQLParseError):
        evaluate("type LIKE", EVENT)


def test_unknown_functions_compile_but_fail_at_evaluation() -> None:
    # The TCK wants a parse to succeed and evaluation to report missingFunction.
    compiled = compile("NOSUCH(type) OR LEFT(type)")
    value, error = compiled.evaluate(EVENT)
    assert value is False
    assert error is not None
    assert error.kind == "missingFunction"


def test_compiled_expressions_pickle() -> None:
    compiled = compile("type LIKE 'com.%' AND exint * 2 = 84")
    restored = pickle.loads(pickle.dumps(compiled))
    assert restored.expression == compiled.expression
    assert restored.ast == compiled.ast
    assert restored.matches(EVENT) is True
    value, error = restored.evaluate(make_event())
    assert value is False
    assert error is not None
    assert str(error) == str(compiled.evaluate(make_event())[1])


def test_validate_accepts_good_expressions() -> None:
    validate("CONCAT() = '' AND LOWER(type) LIKE 'x%' OR SUBSTRING(type, 1, 2) IN ('co')")
    validate("nosuchattribute = 1")  # attributes are only known at evaluation


@pytest.mark.parametrize(
    ("expression", "fragments"),
    [
        ("NOSUCH(1)", ["unknown function NOSUCH", "position 0"]),
        ("LEFT('a')", ["LEFT does not take 1 argument", "LEFT(String, Integer)"]),
        ("CONCAT_WS()", ["CONCAT_WS does not take 0 arguments", "CONCAT_WS(String, String...)"]),
        ("type IN ('a', lower(type, 1))", ["LOWER does not take 2 arguments", "position 14"]),
        ("NOT (a LIKE 'x' OR f(b) = 1)", ["unknown function F"]),
    ],
)
def test_validate_refuses_missing_functions(expression: str, fragments: list[str]) -> None:
    with pytest.raises(CESQLMissingFunctionError) as caught:
        validate(expression)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert caught.value.kind == "missingFunction"


def test_validate_refuses_bad_syntax() -> None:
    with pytest.raises(CESQLParseError):
        validate("type = 'a' AND")


def _has_prefix(args: Sequence[Value]) -> Result:
    return str(args[0]).startswith(str(args[1])), None


def _explodes(args: Sequence[Value]) -> Result:
    raise RuntimeError("boom")


def _wrong_type(args: Sequence[Value]) -> Result:
    return "not an int", None


CUSTOM = BUILTIN_FUNCTIONS.extend(
    Function("HAS_PREFIX", (Type.STRING, Type.STRING), Type.BOOLEAN, _has_prefix),
    Function("EXPLODE", (Type.INTEGER,), Type.INTEGER, _explodes),
    Function("WRONG", (), Type.INTEGER, _wrong_type),
)


def test_custom_functions() -> None:
    assert compile("has_prefix(type, 'com.')", functions=CUSTOM).matches(EVENT) is True
    assert evaluate("HAS_PREFIX(exint, 4)", EVENT, functions=CUSTOM) == (True, None)
    validate("HAS_PREFIX(type, 'x')", functions=CUSTOM)
    with pytest.raises(CESQLMissingFunctionError):
        validate("HAS_PREFIX(type, 'x')")  # not in the built-ins
    assert evaluate("HAS_PREFIX(type, 'x')", EVENT)[1] is not None


@pytest.mark.parametrize("expression", ["EXPLODE(1)", "WRONG()"])
def test_failing_custom_functions_give_zero_and_an_error(expression: str) -> None:
    # Section 3.5.3: zero value of the return type plus a FunctionEvaluationError.
    value, error = evaluate(expression, EVENT, functions=CUSTOM)
    assert value == 0
    assert type(value) is int
    assert error is not None
    assert error.kind == "functionEvaluation"


def test_compiled_with_custom_functions_pickles() -> None:
    compiled = compile("HAS_PREFIX(type, 'com.')", functions=CUSTOM)
    assert pickle.loads(pickle.dumps(compiled)).matches(EVENT) is True


def _noop(args: Sequence[Value]) -> Result:
    return "", None


@pytest.mark.parametrize(
    "functions",
    [
        # Section 3.5: one definition per name and arity ...
        [Function("F", (Type.STRING,), Type.STRING, _noop)] * 2,
        # ... at most one variadic form ...
        [
            Function("F", (Type.STRING,), Type.STRING, _noop, variadic=Type.STRING),
            Function("F", (Type.STRING, Type.STRING), Type.STRING, _noop, variadic=Type.STRING),
        ],
        # ... whose fixed parameters outnumber every other definition's.
        [
            Function("F", (Type.STRING,), Type.STRING, _noop),
            Function("F", (Type.STRING,), Type.STRING, _noop, variadic=Type.STRING),
        ],
        [
            Function("F", (), Type.STRING, _noop, variadic=Type.STRING),
            Function("F", (Type.STRING,), Type.STRING, _noop),
        ],
    ],
)
def test_registry_refuses_ambiguous_overloads(functions: list[Function]) -> None:
    with pytest.raises(ValueError, match="F"):
        FunctionRegistry(functions)


def test_registry_resolves_by_name_and_arity() -> None:
    assert BUILTIN_FUNCTIONS.resolve("substring", 2) is not None
    assert BUILTIN_FUNCTIONS.resolve("SUBSTRING", 3) is not None
    assert BUILTIN_FUNCTIONS.resolve("SUBSTRING", 4) is None
    concat = BUILTIN_FUNCTIONS.resolve("CONCAT", 7)
    assert concat is not None
    assert concat.signature == "CONCAT(String...)"
    with pytest.raises(ValueError, match="invalid CESQL function name"):
        Function("BAD1", (), Type.STRING, _noop)

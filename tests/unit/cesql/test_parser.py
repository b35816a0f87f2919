"""CESQL syntax: error messages and positions, precedence, literals, nesting limits."""

from __future__ import annotations

import pytest

from knray.cesql import MAX_DEPTH, evaluate, parse, to_cesql
from knray.cesql.ast import Binary, Call, Exists, Identifier, In, Like, Literal, Logical, Unary
from knray.errors import CESQLParseError

A, B, C = Identifier("a"), Identifier("b"), Identifier("c")


@pytest.mark.parametrize(
    ("expression", "position", "fragment"),
    [
        ("", 0, "empty expression"),
        ("   ", 0, "empty expression"),
        ("ABC(", 4, "end of expression"),
        ("a = ", 4, "end of expression"),
        ("'abc", 0, "unterminated string literal"),
        ('x = "abc', 4, "unterminated string literal"),
        ("a LIKE 123", 7, "LIKE needs a string literal"),
        ("a LIKE b", 7, "LIKE needs a string literal"),
        ("a # b", 2, "unexpected character '#'"),
        ("2147483648", 0, "outside the 32-bit signed range"),
        ("- 2147483648", 2, "outside the 32-bit signed range"),
        ("-2147483649", 0, "outside the 32-bit signed range"),
        ("(a = 1", 6, "')' to close the '(' at position 0"),
        ("a NOT b", 6, "expected LIKE or IN after NOT"),
        ("x IN ()", 6, "IN needs at least one value"),
        ("x IN (1, 2", 10, "close the '(' at position 5"),
        ("my_attr = 1", 0, "invalid attribute name 'my_attr'"),
        ("f1(2)", 0, "invalid function name 'f1'"),
        ("'it''s'", 3, "doubled quote"),
        ("+ 5", 0, "no unary plus"),
        ("a = 1 b", 6, "unexpected 'b'"),
        ("EXISTS 'a'", 7, "EXISTS needs an attribute name"),
        ("EXISTS", 6, "EXISTS needs an attribute name"),
        ("a = = b", 4, "expected a value but found '='"),
        ("LENGTH('a',)", 11, "expected a value but found ')'"),
        ("a\u00a0= 1", 1, "unexpected character"),
        ("héllo = 1", 1, "unexpected character 'é'"),
    ],
)
def test_parse_errors_name_the_problem_and_position(
    expression: str, position: int, fragment: str
) -> None:
    with pytest.raises(CESQLParseError) as caught:
        parse(expression)
    assert caught.value.position == position
    assert fragment in str(caught.value)
    assert f"at position {position}" in str(caught.value)
    assert caught.value.kind == "parse"


def test_parse_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="position"):
        parse("a AND")


def test_parse_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        parse(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expression", "tree"),
    [
        # CESQLParser.g4: AND, OR and XOR share one level and group to the right.
        ("a AND b OR c", Logical("AND", (A, Logical("OR", (B, C))))),
        ("a OR b AND c", Logical("OR", (A, Logical("AND", (B, C))))),
        ("a AND b AND c", Logical("AND", (A, B, C))),
        ("(a AND b) AND c", Logical("AND", (Logical("AND", (A, B)), C))),
        ("a XOR b XOR c", Binary("XOR", A, Binary("XOR", B, C))),
        # Unary operators take no binary operator into their operand (section 3.6).
        ("NOT a = b", Binary("=", Unary("NOT", A), B)),
        ("NOT a LIKE 'x'", Like(Unary("NOT", A), "x")),
        ("-a * b", Binary("*", Unary("-", A), B)),
        # LIKE and IN bind tighter than every binary operator.
        ("a + b LIKE 'x'", Binary("+", A, Like(B, "x"))),
        ("a = b IN (c)", Binary("=", A, In(B, (C,)))),
        ("a LIKE 'x' = b", Binary("=", Like(A, "x"), B)),
        ("1 + 2 * 3", Binary("+", Literal(1), Binary("*", Literal(2), Literal(3)))),
        ("1 - 2 - 3", Binary("-", Binary("-", Literal(1), Literal(2)), Literal(3))),
        ("a = b != c", Binary("!=", Binary("=", A, B), C)),
        ("5-3", Binary("-", Literal(5), Literal(3))),
        ("5 -3", Binary("-", Literal(5), Literal(3))),
        ("--3", Unary("-", Literal(-3))),
        ("a <> b", Binary("!=", A, B)),
        ("a NOT IN (b, c)", In(A, (B, C), negated=True)),
        ("a NOT LIKE 'x'", Like(A, "x", negated=True)),
        ("NOT EXISTS a", Unary("NOT", Exists("a"))),
        ("+7", Literal(7)),
    ],
)
def test_precedence_and_grouping(expression: str, tree: object) -> None:
    assert parse(expression) == tree


def test_logic_groups_right_like_the_reference_grammar() -> None:
    # TRUE OR TRUE AND FALSE is TRUE OR (TRUE AND FALSE) in SQL, and also here (right grouping);
    # FALSE AND TRUE OR TRUE shows the difference: (FALSE AND TRUE) OR TRUE would be true.
    assert evaluate("TRUE OR TRUE AND FALSE", {}) == (True, None)
    assert evaluate("FALSE AND TRUE OR TRUE", {}) == (False, None)
    assert evaluate("(FALSE AND TRUE) OR TRUE", {}) == (True, None)


def test_keywords_identifiers_and_functions_are_case_insensitive() -> None:
    lower = parse("exists SOURCE and Type like 'x%' or not myExt in (1) xor concat_ws(',', a)")
    upper = parse("EXISTS source AND type LIKE 'x%' OR NOT myext IN (1) XOR CONCAT_WS(',', a)")
    assert lower == upper
    assert parse("Left('a', 1)") == Call("LEFT", (Literal("a"), Literal(1)))


def test_function_call_may_have_space_before_parenthesis() -> None:
    assert parse("LENGTH ('abc')") == Call("LENGTH", (Literal("abc"),))


def test_identifiers_may_contain_and_start_with_digits() -> None:
    assert parse("ext1 = 1ext") == Binary("=", Identifier("ext1"), Identifier("1ext"))
    assert parse("007") == Literal(7)


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("'a\"b\\'c'", "a\"b'c"),
        ('"a\'b\\"c"', "a'b\"c"),
        ("'a\\\"b'", 'a\\"b'),  # \" is not an escape inside '...'
        ("'a\\%b\\_c'", "a\\%b\\_c"),  # LIKE escapes survive the string literal
        ("'a\\\\b'", "a\\\\b"),  # a backslash pair is kept as written
        ("'日本語 👍'", "日本語 👍"),
        ("'line\nbreak'", "line\nbreak"),
        ("''", ""),
    ],
)
def test_string_literals(source: str, value: str) -> None:
    assert parse(source) == Literal(value)


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("-2147483648", -2147483648),
        ("2147483647", 2147483647),
        ("+2147483647", 2147483647),
        ("TRUE", True),
        ("fAlSe", False),
    ],
)
def test_literal_bounds(source: str, value: object) -> None:
    assert parse(source) == Literal(value)  # type: ignore[arg-type]


def test_positions_are_recorded_but_not_compared() -> None:
    tree = parse("  type = 'x'")
    assert isinstance(tree, Binary)
    assert isinstance(tree.left, Identifier)
    assert tree.left.position == 2
    assert tree.position == 7
    assert tree == parse("type='x'")


def test_nesting_up_to_the_limit_works() -> None:
    depth = MAX_DEPTH - 2
    assert evaluate("(" * depth + "1" + ")" * depth, {}) == (1, None)
    assert evaluate("NOT " * depth + "TRUE", {}) == (True, None)
    assert evaluate("-" * depth + "(5)", {}) == (5, None)


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 10_000 + "1" + ")" * 10_000,
        "NOT " * 10_000 + "TRUE",
        "-(" * 5_000 + "1" + ")" * 5_000,
        "LENGTH(" * 5_000 + "'a'" + ")" * 5_000,
        " + ".join(["1"] * 1_000),  # a left-deep tree that would exhaust the evaluator's stack
    ],
)
def test_too_deep_nesting_is_a_parse_error_not_a_crash(expression: str) -> None:
    with pytest.raises(CESQLParseError, match="nested deeper than"):
        parse(expression)


def test_long_flat_chains_are_fine() -> None:
    alternatives = " OR ".join(f"type = 't{n}'" for n in range(2_000))
    assert evaluate(alternatives, {"type": "t1999"}) == (True, None)
    members = ", ".join(f"'t{n}'" for n in range(2_000))
    assert evaluate(f"type IN ({members})", {"type": "t1999"}) == (True, None)


@pytest.mark.parametrize(
    "expression",
    [
        "a AND b OR c XOR d",
        "(a AND b) AND c",
        "a XOR (b XOR c)",
        "(a XOR b) XOR c",
        "NOT a = -b",
        "-(-5) + -5 - -(5)",
        "a + b LIKE 'x\\%y' AND c NOT LIKE \"it's\"",
        "x NOT IN (1, 'a', TRUE, y, LENGTH(z))",
        "CONCAT_WS(',', a, 'b') = 'a,b' OR EXISTS q",
        "'mixed \\' and \"' = a",
        "(a LIKE 'x') LIKE 'y'",
        "a IN (b) IN (TRUE)",
    ],
)
def test_to_cesql_round_trips(expression: str) -> None:
    tree = parse(expression)
    assert parse(to_cesql(tree)) == tree


def test_to_cesql_refuses_strings_no_literal_can_express() -> None:
    with pytest.raises(ValueError, match="trailing backslash"):
        to_cesql(Literal("ends with \\"))
    with pytest.raises(ValueError, match="no CESQL string literal"):
        to_cesql(Literal("both \\' and \\\""))

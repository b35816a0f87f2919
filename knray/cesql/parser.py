"""Recursive-descent CESQL parser following cloudevents/spec ``cesql/CESQLParser.g4``.

Precedence, tightest first (section 3.6 and the order of the grammar's alternatives):
function calls, ``EXISTS``, literals, identifiers and parentheses; unary ``NOT`` and ``-``;
``LIKE``; ``IN``; ``* / %``; ``+ -``; comparisons; ``AND OR XOR``. As in the grammar, the
three logic operators share one level and group to the right: ``a AND b OR c`` is
``a AND (b OR c)``, and a unary operand takes no binary operator: ``NOT a = b`` is
``(NOT a) = b``.
"""

from __future__ import annotations

import re
from typing import Final
from typing import Literal as LiteralType

from knray.cesql.ast import (
    Binary,
    Call,
    Exists,
    Expression,
    Identifier,
    In,
    Like,
    Literal,
    Logical,
    Unary,
    depth,
)
from knray.cesql.lexer import Token, tokenize
from knray.cesql.types import INT32_MAX, INT32_MIN
from knray.errors import CESQLParseError

__all__ = ["MAX_DEPTH", "parse"]

MAX_DEPTH: Final = 64
"""Deepest nesting accepted (parentheses, calls, unary operators, tree depth); deeper
expressions are refused with a CESQLParseError instead of exhausting Python's stack."""

_COMPARISON: Final = 2
_ADDITIVE: Final = 3
_MULTIPLICATIVE: Final = 4
_IN: Final = 5
_LIKE: Final = 6
_BINARY_LEVEL: Final = {
    "*": _MULTIPLICATIVE,
    "/": _MULTIPLICATIVE,
    "%": _MULTIPLICATIVE,
    "+": _ADDITIVE,
    "-": _ADDITIVE,
    "=": _COMPARISON,
    "!=": _COMPARISON,
    "<": _COMPARISON,
    "<=": _COMPARISON,
    ">": _COMPARISON,
    ">=": _COMPARISON,
}
_LOGIC: Final = frozenset({"AND", "OR", "XOR"})
# Section 2.2: value-identifier ::= ( lowercase-char | digit )+ (case-insensitive, section 2).
_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9]+")
# Section 2.4: function-identifier ::= char ( "_" | char )*.
_FUNCTION_NAME: Final = re.compile(r"[A-Za-z][A-Za-z_]*")


def parse(expression: str) -> Expression:
    """Parse CESQL text into a syntax tree.

    Raises CESQLParseError, whose message names the problem and its 0-based position
    (also in ``.position``).
    """
    if not isinstance(expression, str):
        raise TypeError(f"a CESQL expression is a str, not {type(expression).__name__}")
    return _Parser(expression).parse()


def _describe(token: Token) -> str:
    return "the end of the expression" if token.kind == "EOF" else repr(token.text)


class _Parser:
    __slots__ = ("_index", "_nesting", "_tokens")

    def __init__(self, source: str) -> None:
        self._tokens = tokenize(source)
        self._index = 0
        self._nesting = 0  # open parentheses, argument lists and unary operators

    # --- token access -------------------------------------------------------------------
    @property
    def _peek(self) -> Token:
        return self._tokens[self._index]

    def _following(self) -> Token:
        return self._tokens[min(self._index + 1, len(self._tokens) - 1)]

    def _advance(self) -> Token:
        token = self._tokens[self._index]
        if token.kind != "EOF":
            self._index += 1
        return token

    def _expect(self, kind: str, what: str) -> Token:
        token = self._peek
        if token.kind != kind:
            raise self._error(f"expected {what} but found {_describe(token)}", token.position)
        return self._advance()

    @staticmethod
    def _error(message: str, position: int) -> CESQLParseError:
        return CESQLParseError(f"{message} at position {position}", position=position)

    def _enter(self, position: int) -> None:
        self._nesting += 1
        if self._nesting > MAX_DEPTH:
            raise self._error(f"expression nested deeper than {MAX_DEPTH} levels", position)

    # --- grammar ------------------------------------------------------------------------
    def parse(self) -> Expression:
        if self._peek.kind == "EOF":
            raise self._error("empty expression", 0)
        node = self._logic()
        token = self._peek
        if token.kind != "EOF":
            if token.kind == "NOT":
                raise self._error("expected LIKE or IN after NOT", self._following().position)
            raise self._error(f"unexpected {_describe(token)}", token.position)
        if depth(node) > MAX_DEPTH:
            raise self._error(f"expression nested deeper than {MAX_DEPTH} levels", 0)
        return node

    def _logic(self) -> Expression:
        # CESQLParser.g4: <assoc=right> expression (AND | OR | XOR) expression, one level.
        operands = [self._binary(_COMPARISON)]
        operators: list[Token] = []
        while self._peek.kind in _LOGIC:
            operators.append(self._advance())
            operands.append(self._binary(_COMPARISON))
        node = operands[-1]
        chained = False
        for operator, left in zip(reversed(operators), reversed(operands[:-1]), strict=True):
            kind = operator.kind
            if kind == "XOR":
                node = Binary("XOR", left, node, position=operator.position)
                chained = False
            elif kind in {"AND", "OR"}:
                logic: LiteralType["AND", "OR"] = "AND" if kind == "AND" else "OR"
                if chained and isinstance(node, Logical) and node.operator == logic:
                    # Same operator further right in this chain: one n-ary node (a AND b AND c).
                    node = Logical(logic, (left, *node.operands), position=operator.position)
                else:
                    node = Logical(logic, (left, node), position=operator.position)
                chained = True
        return node

    def _binary(self, minimum: int) -> Expression:
        left = self._unary()
        while True:
            token = self._peek
            kind = token.kind
            negated = False
            if kind == "NOT" and self._following().kind in ("LIKE", "IN"):
                negated = True
                kind = self._following().kind
            if kind == "LIKE" and minimum <= _LIKE:
                if negated:
                    self._advance()
                self._advance()
                pattern = self._peek
                if pattern.kind != "STRING":
                    raise self._error(
                        f"LIKE needs a string literal pattern, found {_describe(pattern)}",
                        pattern.position,
                    )
                self._advance()
                assert isinstance(pattern.value, str)
                left = Like(left, pattern.value, negated, position=token.position)
            elif kind == "IN" and minimum <= _IN:
                if negated:
                    self._advance()
                self._advance()
                values = self._list(allow_empty=False, what="IN")
                left = In(left, values, negated, position=token.position)
            elif kind in _BINARY_LEVEL and _BINARY_LEVEL[kind] >= minimum:
                self._advance()
                right = self._binary(_BINARY_LEVEL[kind] + 1)
                left = Binary(kind, left, right, position=token.position)
            else:
                return left

    def _unary(self) -> Expression:
        token = self._peek
        if token.kind in {"NOT", "-"}:
            following = self._following()
            if (
                token.kind == "-"
                and following.kind == "INTEGER"
                and following.position == token.end
            ):
                # CESQLLexer.g4 INTEGER_LITERAL: ('+' | '-')? digits, so -2147483648 is valid.
                self._advance()
                self._advance()
                return self._integer(following, negative=True, start=token.position)
            self._advance()
            self._enter(token.position)
            operand = self._unary()
            self._nesting -= 1
            if token.kind == "NOT":
                return Unary("NOT", operand, position=token.position)
            return Unary("-", operand, position=token.position)
        if token.kind == "+":
            following = self._following()
            if following.kind == "INTEGER" and following.position == token.end:
                self._advance()
                self._advance()
                return self._integer(following, negative=False, start=token.position)
            raise self._error("unexpected '+' (CESQL has no unary plus)", token.position)
        return self._primary()

    def _integer(self, token: Token, *, negative: bool, start: int) -> Literal:
        assert isinstance(token.value, int)
        value = -token.value if negative else token.value
        # Section 2.2: integer literals MUST be valid 32-bit signed integers.
        if not INT32_MIN <= value <= INT32_MAX:
            raise self._error(f"integer literal {value} is outside the 32-bit signed range", start)
        return Literal(value, position=start)

    def _primary(self) -> Expression:
        token = self._peek
        kind = token.kind
        if kind == "INTEGER":
            self._advance()
            return self._integer(token, negative=False, start=token.position)
        if kind == "STRING":
            self._advance()
            assert isinstance(token.value, str)
            return Literal(token.value, position=token.position)
        if kind in {"TRUE", "FALSE"}:
            self._advance()
            return Literal(kind == "TRUE", position=token.position)
        if kind == "(":
            self._advance()
            self._enter(token.position)
            node = self._logic()
            self._nesting -= 1
            self._expect(")", f"')' to close the '(' at position {token.position}")
            return node
        if kind == "EXISTS":
            self._advance()
            name = self._peek
            if name.kind != "WORD" or not _IDENTIFIER.fullmatch(name.text):
                raise self._error(
                    f"EXISTS needs an attribute name, found {_describe(name)}", name.position
                )
            self._advance()
            return Exists(name.text.lower(), position=token.position)
        if kind == "WORD":
            self._advance()
            if self._peek.kind == "(":
                if not _FUNCTION_NAME.fullmatch(token.text):
                    raise self._error(
                        f"invalid function name {token.text!r} (letters and '_' only)",
                        token.position,
                    )
                arguments = self._list(allow_empty=True, what=token.text.upper())
                return Call(token.text.upper(), arguments, position=token.position)
            if not _IDENTIFIER.fullmatch(token.text):
                raise self._error(
                    f"invalid attribute name {token.text!r} (letters and digits only)",
                    token.position,
                )
            return Identifier(token.text.lower(), position=token.position)
        if kind == "EOF":
            raise self._error("unexpected end of expression: expected a value", token.position)
        raise self._error(f"expected a value but found {_describe(token)}", token.position)

    def _list(self, *, allow_empty: bool, what: str) -> tuple[Expression, ...]:
        # "(" expression ("," expression)* ")": function arguments and IN sets.
        opening = self._expect("(", f"'(' after {what}")
        self._enter(opening.position)
        items: list[Expression] = []
        if self._peek.kind == ")":
            if not allow_empty:
                raise self._error(f"{what} needs at least one value", self._peek.position)
        else:
            items.append(self._logic())
            while self._peek.kind == ",":
                self._advance()
                items.append(self._logic())
        self._nesting -= 1
        closing = self._peek
        if closing.kind != ")":
            raise self._error(
                f"expected ',' or ')' to close the '(' at position {opening.position} "
                f"but found {_describe(closing)}",
                closing.position,
            )
        self._advance()
        return tuple(items)

"""The CESQL syntax tree: immutable nodes, compared by structure (positions are ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final
from typing import Literal as LiteralType

from knray.cesql.types import Value

__all__ = [
    "ARITHMETIC_OPERATORS",
    "COMPARISON_OPERATORS",
    "Binary",
    "Call",
    "Exists",
    "Expression",
    "Identifier",
    "In",
    "Like",
    "Literal",
    "Logical",
    "Unary",
    "depth",
    "to_cesql",
    "walk",
]

ARITHMETIC_OPERATORS: Final = frozenset({"*", "/", "%", "+", "-"})
# "<>" is parsed as "!=" (section 3.4.2: same as NOT (x = y)).
COMPARISON_OPERATORS: Final = frozenset({"=", "!=", "<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class Expression:
    """Base class of every node; ``position`` is the 0-based offset in the source text."""

    def children(self) -> tuple[Expression, ...]:
        """The direct sub-expressions, left to right."""
        return ()


@dataclass(frozen=True, slots=True)
class Literal(Expression):
    """A Boolean, Integer or String literal."""

    value: Value
    position: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Identifier(Expression):
    """A context attribute or extension, by its lower-case name."""

    name: str
    position: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Exists(Expression):
    """``EXISTS name``."""

    name: str
    position: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Unary(Expression):
    """``NOT x`` or ``-x``."""

    operator: LiteralType["NOT", "-"]
    operand: Expression
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class Binary(Expression):
    """Arithmetic, comparison or ``XOR``; ``<>`` is stored as ``!=``."""

    operator: str
    left: Expression
    right: Expression
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class Logical(Expression):
    """A chain ``a AND b AND c`` (or ``OR``), evaluated left to right with short-circuit."""

    operator: LiteralType["AND", "OR"]
    operands: tuple[Expression, ...]
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return self.operands


@dataclass(frozen=True, slots=True)
class Like(Expression):
    """``x [NOT] LIKE 'pattern'``; the pattern is the decoded string literal."""

    operand: Expression
    pattern: str
    negated: bool = False
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class In(Expression):
    """``x [NOT] IN (y1, y2, ...)``."""

    operand: Expression
    values: tuple[Expression, ...]
    negated: bool = False
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return (self.operand, *self.values)


@dataclass(frozen=True, slots=True)
class Call(Expression):
    """A function invocation; ``name`` is upper-case."""

    name: str
    arguments: tuple[Expression, ...]
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return self.arguments


def walk(node: Expression) -> Iterator[Expression]:
    """Every node of the tree, parents before children (iterative, any depth)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children()))


def depth(node: Expression) -> int:
    """The number of nodes on the longest root-to-leaf path (iterative, any depth)."""
    deepest = 0
    stack = [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in current.children())
    return deepest


def to_cesql(node: Expression) -> str:
    """CESQL text for a tree; parsing the text gives an equal tree.

    Raises ValueError for a String literal that no CESQL string literal can express (one
    ending in a backslash, or holding both a backslash-apostrophe and a backslash-quote).
    """
    if isinstance(node, Literal):
        return _literal(node.value)
    if isinstance(node, Identifier):
        return node.name
    if isinstance(node, Exists):
        return f"EXISTS {node.name}"
    if isinstance(node, Unary):
        if node.operator == "NOT":
            return f"NOT {_operand(node.operand)}"
        return f"-({to_cesql(node.operand)})"
    if isinstance(node, Binary):
        return f"{_operand(node.left)} {node.operator} {_operand(node.right)}"
    if isinstance(node, Logical):
        return f" {node.operator} ".join(_operand(operand) for operand in node.operands)
    if isinstance(node, Like):
        negation = "NOT " if node.negated else ""
        return f"{_operand(node.operand)} {negation}LIKE {_string(node.pattern)}"
    if isinstance(node, In):
        negation = "NOT " if node.negated else ""
        values = ", ".join(to_cesql(value) for value in node.values)
        return f"{_operand(node.operand)} {negation}IN ({values})"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(to_cesql(argument) for argument in node.arguments)})"
    raise TypeError(f"not a CESQL node: {node!r}")


def _operand(node: Expression) -> str:
    text = to_cesql(node)
    if isinstance(node, Literal | Identifier | Exists | Call | Unary):
        return text
    return f"({text})"


def _literal(value: Value) -> str:
    if value.__class__ is bool:
        return "TRUE" if value else "FALSE"
    if value.__class__ is int:
        return str(value)
    assert isinstance(value, str)
    return _string(value)


def _string(text: str) -> str:
    # Section 2.2: inside 'x' only \' is an escape (\" inside "x"); any other backslash pair is
    # kept as written, so a backslash right before the quote character cannot be expressed.
    if text.endswith("\\") and (len(text) - len(text.rstrip("\\"))) % 2:
        raise ValueError(f"no CESQL string literal can express {text!r} (trailing backslash)")
    for quote in ("'", '"'):
        if "\\" + quote not in text:
            return quote + text.replace(quote, "\\" + quote) + quote
    raise ValueError(f"no CESQL string literal can express {text!r}")

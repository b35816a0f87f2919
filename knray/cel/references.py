"""What a CEL expression reads from ``event``, found from its tokens at compile time.

Two uses: the activation builder copies only the attributes (and the parts of ``data``) an
expression can reach, so an event whose data is never read is never decoded; and the backends
without a type checker reject undeclared variables and unknown functions at compile time, as
the checking backend (and cel-go in Dapr) does.

The analysis is conservative: any use of ``event`` other than a plain chain of field selections
(``event.data.x``) means "the whole value at that point", and an expression it cannot tokenize
gets no projection and no extra checks (the backend's own compiler still runs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Union

__all__ = [
    "MACROS",
    "STANDARD_FUNCTIONS",
    "TYPE_NAMES",
    "VARIABLE",
    "Projection",
    "References",
    "analyze",
    "undeclared_reference",
]

VARIABLE: Final = "event"

# A projection maps a field name to None (the whole value is needed) or to a deeper projection.
Projection = Mapping[str, Union["Projection", None]]

# Functions of the CEL standard environment (cel-spec langdef.md, "List of Standard
# Definitions"); cel-go's default environment, which Dapr uses, adds no extensions.
STANDARD_FUNCTIONS: Final = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches",
        "int", "uint", "double", "string", "bytes", "bool", "dyn", "type",
        "timestamp", "duration",
        "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear",
        "getMonth", "getHours", "getMilliseconds", "getMinutes", "getSeconds",
    }
)  # fmt: skip
MACROS: Final = frozenset({"has", "all", "exists", "exists_one", "map", "filter"})
# Identifiers that name types, usable as values (``type(x) == string``).
TYPE_NAMES: Final = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn"}
)
_LITERAL_WORDS: Final = frozenset({"true", "false", "null"})
_BINDING_MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})

_TOKEN: Final = re.compile(
    r"""
      (?P<skip>\s+|//[^\n]*)
    | (?P<str>(?:[rR][bB]?|[bB][rR]?)?(?:\"\"\"|'''|"|'))
    | (?P<num>0[xX][0-9a-fA-F]+[uU]?|(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?[uU]?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class References:
    """The result of :func:`analyze`.

    ``projection`` is None when the whole ``event`` may be read. ``complete`` is False when the
    expression could not be tokenized; then the other sets are empty and must not be trusted.
    """

    projection: Projection | None
    free_identifiers: frozenset[str]
    bound_identifiers: frozenset[str]
    calls: frozenset[str]
    complete: bool


_UNKNOWN: Final = References(None, frozenset(), frozenset(), frozenset(), complete=False)


def _tokenize(text: str) -> list[tuple[str, str]] | None:
    tokens: list[tuple[str, str]] = []
    position = 0
    length = len(text)
    while position < length:
        found = _TOKEN.match(text, position)
        if found is None:
            return None  # a character outside the grammar we handle (for example a backtick)
        kind = found.lastgroup
        assert kind is not None
        if kind == "str":
            prefix_and_quote = found.group()
            quote = prefix_and_quote.lstrip("rRbB")
            raw = "r" in prefix_and_quote[: -len(quote)].lower()
            index = found.end()
            while True:
                if index >= length:
                    return None  # unterminated: the backend reports it
                if not raw and text[index] == "\\":
                    index += 2
                elif text.startswith(quote, index):
                    index += len(quote)
                    break
                else:
                    index += 1
            tokens.append(("str", text[found.start() : index]))
            position = index
            continue
        if kind != "skip":
            tokens.append((kind, found.group()))
        position = found.end()
    return tokens


def _ends_value(token: tuple[str, str] | None) -> bool:
    if token is None:
        return False
    kind, text = token
    if kind == "ident":
        return text != "in"
    return kind in ("num", "str") or text in (")", "]", "}")


def _add_leaf(root: dict[str, object], path: list[str]) -> None:
    node = root
    for name in path[:-1]:
        child = node.get(name, _MISSING)
        if child is None:
            return  # already needed whole
        if child is _MISSING:
            child = {}
            node[name] = child
        assert isinstance(child, dict)
        node = child
    node[path[-1]] = None


_MISSING: Final = object()


def analyze(expression: str) -> References:
    """Find what ``expression`` reads from ``event``, its free identifiers and its calls."""
    tokens = _tokenize(expression)
    if tokens is None:
        return _UNKNOWN
    count = len(tokens)

    def at(index: int) -> tuple[str, str] | None:
        return tokens[index] if 0 <= index < count else None

    projection: dict[str, object] = {}
    whole_event = False
    free: set[str] = set()
    bound: set[str] = set()
    calls: set[str] = set()
    for index, (kind, text) in enumerate(tokens):
        if kind != "ident":
            continue
        previous = at(index - 1)
        following = at(index + 1)
        calling = following == ("op", "(")
        if previous == ("op", ".") and _ends_value(at(index - 2)):
            # A field selection or a method call on some value.
            if calling:
                calls.add(text)
                if text in _BINDING_MACROS:
                    # x.all(v, ...), or the two-variable form x.all(k, v, ...)
                    position = index + 2
                    for _ in range(2):
                        name, comma = at(position), at(position + 1)
                        if name is None or name[0] != "ident" or comma != ("op", ","):
                            break
                        bound.add(name[1])
                        position += 2
            continue
        if text == "in" or text in _LITERAL_WORDS:
            continue
        if calling:
            calls.add(text)
            continue
        if text != VARIABLE:
            free.add(text)
            continue
        path: list[str] = []
        position = index
        while (
            at(position + 1) == ("op", ".")
            and (name := at(position + 2)) is not None
            and name[0] == "ident"
            and at(position + 3) != ("op", "(")
        ):
            path.append(name[1])
            position += 2
        if path:
            _add_leaf(projection, path)
        else:
            whole_event = True
    return References(
        projection=None if whole_event else _freeze(projection),
        free_identifiers=frozenset(free),
        bound_identifiers=frozenset(bound),
        calls=frozenset(calls),
        complete=True,
    )


def _freeze(node: dict[str, object]) -> Projection:
    frozen: dict[str, Projection | None] = {}
    for name, child in node.items():
        frozen[name] = None if child is None else _freeze(child)  # type: ignore[arg-type]
    return frozen


def undeclared_reference(
    references: References, variables: frozenset[str] | None = None
) -> str | None:
    """A cel-go style message for the first undeclared variable or unknown function, if any.

    ``variables`` overrides the free identifiers found by the tokenizer (a backend may know them
    better from its own parse tree).
    """
    if not references.complete:
        return None
    names = references.free_identifiers if variables is None else variables
    unknown = sorted(names - references.bound_identifiers - TYPE_NAMES - {VARIABLE})
    if unknown:
        return f"undeclared reference to '{unknown[0]}'"
    unknown = sorted(references.calls - STANDARD_FUNCTIONS - MACROS)
    if unknown:
        return f"undeclared reference to function '{unknown[0]}'"
    return None

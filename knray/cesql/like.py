"""LIKE patterns (cesql/spec.md section 3.4.3) compiled once into a fast string test.

A pattern is split at its ``%`` wildcards into fixed-length pieces (literal text and ``_``).
The first piece must match at the start, the last at the end, and each middle piece is found
leftmost after the previous one, which is both correct and free of regex backtracking, so a
hostile pattern such as ``%a%a%a%a%b`` cannot stall a dispatcher.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import methodcaller
from typing import Final

__all__ = ["Matcher", "compile_like"]

Matcher = Callable[[str], object]
"""A test of a string; a truthy result means the string matches."""

_ONE: Final = object()  # the _ wildcard: exactly one character


def _pieces(pattern: str) -> list[list[object]]:
    # Section 3.4.3: % and _ are wildcards; \% and \_ match them literally. A backslash
    # before any other character is itself literal (TCK like_expression.yaml "Exact match (2)":
    # 'ab\c' LIKE 'ab\c' is true). Returns the pieces between % signs; each piece is a list of
    # literal strings and _ONE markers.
    pieces: list[list[object]] = [[]]
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in "%_":
            pieces[-1].append(pattern[index + 1])
            index += 2
            continue
        if char == "%":
            pieces.append([])
        elif char == "_":
            pieces[-1].append(_ONE)
        else:
            pieces[-1].append(char)
        index += 1
    return pieces


class _Piece:
    # A fixed-length run of literal characters and _ wildcards.

    __slots__ = ("_regex", "_text", "length")

    def __init__(self, items: list[object]) -> None:
        self.length = len(items)
        if _ONE in items:
            source = "".join("." if item is _ONE else re.escape(str(item)) for item in items)
            self._regex: re.Pattern[str] | None = re.compile(source, re.DOTALL)
            self._text = ""
        else:
            self._regex = None
            self._text = "".join(str(item) for item in items)

    def at(self, text: str, position: int) -> bool:
        if self._regex is None:
            return text.startswith(self._text, position)
        return position + self.length <= len(text) and self._regex.match(text, position) is not None

    def find(self, text: str, start: int, end: int) -> int:
        if self._regex is None:
            return text.find(self._text, start, end)
        found = self._regex.search(text, start, end)
        return -1 if found is None else found.start()


class _Wildcards:
    # The general matcher: head piece, middle pieces found leftmost, tail piece.

    __slots__ = ("_head", "_middle", "_minimum", "_tail")

    def __init__(self, pieces: list[_Piece]) -> None:
        self._head = pieces[0]
        self._tail = pieces[-1]
        self._middle = tuple(piece for piece in pieces[1:-1] if piece.length)
        self._minimum = sum(piece.length for piece in pieces)

    def __call__(self, text: str) -> bool:
        if len(text) < self._minimum or not self._head.at(text, 0):
            return False
        end = len(text) - self._tail.length
        if not self._tail.at(text, end):
            return False
        position = self._head.length
        for piece in self._middle:
            found = piece.find(text, position, end)
            if found < 0:
                return False
            position = found + piece.length
        return True


class _Exact:
    # A pattern without %: the whole string must match the one fixed-length piece.

    __slots__ = ("_piece",)

    def __init__(self, piece: _Piece) -> None:
        self._piece = piece

    def __call__(self, text: str) -> bool:
        return len(text) == self._piece.length and self._piece.at(text, 0)


def _always(text: str) -> bool:
    return True


def compile_like(pattern: str) -> Matcher:
    """A test of a string against ``pattern``: case-sensitive, whole-string.

    ``%`` matches any run of characters and ``_`` any one character, newlines included.
    Exact, prefix, suffix and infix patterns compile to a single string method call.
    """
    items = _pieces(pattern)
    literal = [None if _ONE in piece else "".join(map(str, piece)) for piece in items]
    if len(items) == 1:
        if literal[0] is not None:
            return literal[0].__eq__
        return _Exact(_Piece(items[0]))
    if all(piece == "" for piece in literal):
        return _always
    if len(items) == 2 and literal[0] and literal[1] == "":
        return methodcaller("startswith", literal[0])
    if len(items) == 2 and literal[0] == "" and literal[1]:
        return methodcaller("endswith", literal[1])
    if len(items) == 3 and literal[0] == "" and literal[1] and literal[2] == "":
        return methodcaller("__contains__", literal[1])
    return _Wildcards([_Piece(piece) for piece in items])

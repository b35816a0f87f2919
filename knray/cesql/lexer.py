"""Turns CESQL text into tokens (cloudevents/spec ``cesql/CESQLLexer.g4``, case-insensitive)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from knray.errors import CESQLParseError

__all__ = ["KEYWORDS", "Token", "tokenize"]

# Section 2: keywords are case-insensitive.
KEYWORDS: Final = frozenset({"AND", "OR", "XOR", "NOT", "LIKE", "EXISTS", "IN", "TRUE", "FALSE"})

# Longest operators first so "<=" wins over "<".
_OPERATORS: Final = ("!=", "<>", "<=", ">=", "(", ")", ",", "+", "-", "*", "/", "%", "=", "<", ">")
# CESQLLexer.g4 skips only these.
_SPACE: Final = frozenset(" \t\r\n")
_WORD: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@dataclass(frozen=True, slots=True)
class Token:
    """One token. ``kind`` is a keyword (upper-case), an operator, or one of ``INTEGER``,
    ``STRING``, ``WORD`` and ``EOF``; ``value`` holds the decoded literal or the word."""

    kind: str
    text: str
    position: int
    end: int
    value: str | int | None = None


def tokenize(source: str) -> list[Token]:
    """The tokens of ``source``, ending with an ``EOF`` token."""
    tokens: list[Token] = []
    index = 0
    length = len(source)
    while index < length:
        char = source[index]
        if char in _SPACE:
            index += 1
            continue
        if char in "'\"":
            end, value = _string(source, index)
            tokens.append(Token("STRING", source[index:end], index, end, value))
            index = end
            continue
        if char in _WORD:
            end = index + 1
            while end < length and source[end] in _WORD:
                end += 1
            text = source[index:end]
            tokens.append(_word(text, index, end))
            index = end
            continue
        for operator in _OPERATORS:
            if source.startswith(operator, index):
                kind = "!=" if operator == "<>" else operator
                end = index + len(operator)
                tokens.append(Token(kind, operator, index, end))
                index = end
                break
        else:
            raise CESQLParseError(
                f"unexpected character {char!r} at position {index}", position=index
            )
    tokens.append(Token("EOF", "", length, length))
    return tokens


def _word(text: str, start: int, end: int) -> Token:
    upper = text.upper()
    if upper in KEYWORDS:
        return Token(upper, text, start, end)
    if text.isdigit():
        # CESQLLexer.g4: INTEGER_LITERAL is listed before the identifier rules, so an all-digit
        # word is an integer; the sign is handled by the parser.
        return Token("INTEGER", text, start, end, int(text))
    return Token("WORD", text, start, end, text)


def _string(source: str, start: int) -> tuple[int, str]:
    # Section 2.2: 'x' and "x" literals; inside them the delimiter is escaped with a backslash.
    # As in CESQLLexer.g4 a backslash always pairs with the next character; only the pair
    # backslash-delimiter is decoded, the other pairs (\% \_ for LIKE, \c ...) stay as written.
    quote = source[start]
    parts: list[str] = []
    index = start + 1
    length = len(source)
    while index < length:
        char = source[index]
        if char == "\\" and index + 1 < length:
            following = source[index + 1]
            parts.append(following if following == quote else source[index : index + 2])
            index += 2
            continue
        if char == quote:
            if index + 1 < length and source[index + 1] == quote:
                raise CESQLParseError(
                    f"doubled quote {quote}{quote} at position {index} inside a string literal: "
                    f"escape the quote as \\{quote}",
                    position=index,
                )
            return index + 1, "".join(parts)
        parts.append(char)
        index += 1
    raise CESQLParseError(
        f"unterminated string literal starting at position {start}", position=start
    )

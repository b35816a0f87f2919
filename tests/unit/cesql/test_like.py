"""LIKE (section 3.4.3): wildcards, escapes, regex metacharacters, Unicode, hostile patterns."""

from __future__ import annotations

import random
import re
import time

import pytest

from knray.cesql import evaluate


def like(text: str, pattern: str) -> bool:
    result, failure = evaluate(f"x LIKE {_quote(pattern)}", {"x": text})
    assert failure is None
    assert isinstance(result, bool)
    return result


def _quote(pattern: str) -> str:
    return "'" + pattern.replace("'", "\\'") + "'"


@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        # Regular-expression metacharacters are ordinary characters.
        ("a.c", "a.c", True),
        ("abc", "a.c", False),
        ("a+b", "a+b", True),
        ("aab", "a+b", False),
        ("(x)", "(x)", True),
        ("a*", "a*", True),
        ("ab", "a*", False),
        ("[ab]", "[ab]", True),
        ("a", "[ab]", False),
        ("a$^|?{1}", "a$^|?{1}", True),
        ("x.y", "x.%", True),
        ("xzy", "x.%", False),
        ("a\\d", "a\\d", True),  # \d is a backslash and a d, not a digit class
        ("a1", "a\\d", False),
        # Escapes: \% and \_ are literal; a backslash before anything else is itself literal.
        ("100%", "100\\%", True),
        ("1000", "100\\%", False),
        ("a_", "a\\_", True),
        ("ab", "a\\_", False),
        ("a\\b", "a\\b", True),
        ("a\\\\", "a\\\\", True),  # a trailing backslash pair is two literal backslashes
        ("x\\%", "x\\\\%", True),  # \\% is a literal backslash then a literal %
        ("%_", "\\%\\_", True),
        ("ab", "\\%\\_", False),
        ("50% off", "%\\%%", True),
        ("50 off", "%\\%%", False),
        # Wildcards.
        ("", "%", True),
        ("", "", True),
        ("", "_", False),
        ("abc", "%%", True),
        ("abc", "%b%", True),
        ("abc", "a%c", True),
        ("ac", "a%_c", False),
        ("abc", "a%_c", True),
        ("aXbYc", "a_b%c", True),
        ("abcabc", "%abc", True),
        ("abcab", "%abc", False),
        ("abab", "ab%ab", True),
        ("aba", "ab%ab", False),  # head and tail may not overlap
        ("ABC", "abc", False),  # case-sensitive
        ("com.example.a", "com.example.%", True),
        ("com.example", "com.example.%", False),
        # _ and % match any character, newlines included.
        ("a\nb", "a_b", True),
        ("a\nb\n", "a%", True),
        ("\n", "%", True),
        # Unicode: one character is one code point.
        ("日本語", "日_語", True),
        ("👍x", "_x", True),
        ("👍x", "__x", False),
        ("straße", "STRASSE", False),
    ],
)
def test_like(text: str, pattern: str, expected: bool) -> None:
    assert like(text, pattern) is expected


def test_like_casts_the_left_operand_to_string() -> None:
    assert evaluate("n LIKE '4_'", {"n": 42}) == (True, None)
    assert evaluate("b LIKE 't%'", {"b": True}) == (True, None)
    assert evaluate("x NOT LIKE 'a%'", {"x": "abc"}) == (False, None)


def _reference(text: str, pattern: str) -> bool:
    # An independent reading of section 3.4.3 as a regular expression.
    parts = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in "%_":
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        parts.append({"%": ".*", "_": "."}.get(char, re.escape(char)))
        index += 1
    return re.fullmatch("".join(parts), text, re.DOTALL) is not None


def test_like_agrees_with_a_regex_reference_on_random_inputs() -> None:
    generator = random.Random(20240611)
    for _ in range(3_000):
        pattern = "".join(generator.choice("ab%_\\") for _ in range(generator.randint(0, 7)))
        text = "".join(generator.choice("ab%_\\\n") for _ in range(generator.randint(0, 9)))
        if (len(pattern) - len(pattern.rstrip("\\"))) % 2:
            pattern += "a"  # a string literal cannot end in an odd run of backslashes
        assert like(text, pattern) is _reference(text, pattern), (text, pattern)


def test_hostile_patterns_do_not_backtrack() -> None:
    text = "a" * 20_000
    started = time.perf_counter()
    assert like(text, "%a%a%a%a%a%a%a%a%b") is False
    assert like(text, "%a_a%a_a%a_a%_b") is False
    assert like(text + "b", "%a%a%a%a%a%a%a%a%b") is True
    assert time.perf_counter() - started < 1.0

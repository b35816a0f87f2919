"""Header value encoding: canonical strings and HTTP percent-encoding (binding 3.1.3.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from knray.events.headers import (
    attribute_to_string,
    percent_decode,
    percent_encode,
    unquote_header,
)

PRINTABLE_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


def test_spec_example_is_encoded_as_the_binding_shows() -> None:
    assert percent_encode("Euro \u20ac \U0001f600") == "Euro%20%E2%82%AC%20%F0%9F%98%80"


def test_printable_ascii_other_than_space_quote_percent_is_left_alone() -> None:
    assert percent_encode(PRINTABLE_SAFE) == PRINTABLE_SAFE


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        (" ", "%20"),
        ('"', "%22"),
        ("%", "%25"),
        ("\n", "%0A"),
        ("\x7f", "%7F"),
        ("\u00e9", "%C3%A9"),
        ("a b/c?d=e&f", "a%20b/c?d=e&f"),
    ],
)
def test_space_quote_percent_and_non_printable_characters_are_encoded(
    text: str, encoded: str
) -> None:
    assert percent_encode(text) == encoded


@pytest.mark.parametrize(
    "text",
    ["", "plain", "50% off", 'say "hi"', "tab\there", "\u00fcber \U0001f30e", "%2520"],
)
def test_decode_inverts_encode(text: str) -> None:
    assert percent_decode(percent_encode(text)) == text


def test_decode_accepts_lower_case_and_unnecessary_encoding() -> None:
    assert percent_decode("%c3%a9%41") == "\u00e9A"


def test_decode_performs_a_single_round() -> None:
    assert percent_decode("%2541") == "%41"


def test_decode_keeps_a_percent_that_starts_no_escape() -> None:
    assert percent_decode("100%zz") == "100%zz"


@pytest.mark.parametrize("text", ["%C0%A0", "%FF", "%E2%82"])
def test_decode_rejects_invalid_utf8(text: str) -> None:
    with pytest.raises(UnicodeDecodeError):
        percent_decode(text)


def test_encode_rejects_lone_surrogates() -> None:
    with pytest.raises(UnicodeEncodeError):
        percent_encode("bad \ud800")


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ('"a b"', "a b"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"back\\\\slash"', "back\\slash"),
        ('""', ""),
        ("unquoted", "unquoted"),
        ('in"side', 'in"side'),
    ],
)
def test_quoted_strings_are_unescaped(raw: str, value: str) -> None:
    assert unquote_header(raw) == value


@pytest.mark.parametrize("raw", ['"', '"open', '"escaped end\\"'])
def test_unterminated_quoted_strings_are_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="unterminated"):
        unquote_header(raw)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("2018-04-05t03:56:24z", "2018-04-05t03:56:24z"),
        (True, "true"),
        (False, "false"),
        (-42, "-42"),
        (b"\x00\xff", "AP8="),
        (datetime(2018, 4, 5, 3, 56, 24, tzinfo=UTC), "2018-04-05T03:56:24Z"),
        (
            datetime(2018, 4, 5, 3, 56, 24, 500000, tzinfo=timezone(timedelta(hours=2))),
            "2018-04-05T03:56:24.500000+02:00",
        ),
    ],
)
def test_canonical_strings_follow_the_type_system(value: object, text: str) -> None:
    assert attribute_to_string(value) == text

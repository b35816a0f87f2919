"""Attribute values as protocol header strings.

Binary content mode carries every attribute except ``datacontenttype`` in a header. The value is
the attribute's canonical string (CloudEvents spec, "Type System"); HTTP additionally
percent-encodes it (HTTP binding section 3.1.3.2), Kafka sends it as UTF-8 (Kafka binding
section 3.2.3).
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, unquote_to_bytes

__all__ = ["attribute_to_string", "percent_decode", "percent_encode", "unquote_header"]

# HTTP binding 3.1.3.2: space, double-quote, percent and everything outside printable ASCII
# (U+0021-U+007E) MUST be percent-encoded; nothing else is.
_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
_NEEDS_ENCODING: Final = re.compile(r"[^\x21\x23\x24\x26-\x7e]")
_QUOTED_PAIR: Final = re.compile(r"\\(.)", re.S)


def attribute_to_string(value: Any) -> str:
    """The canonical string of an attribute value (spec "Type System").

    Strings (``time`` included, when it arrived as a string) are returned unchanged.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def percent_encode(text: str) -> str:
    """Percent-encode ``text`` for an HTTP header value (HTTP binding 3.1.3.2).

    Only space, ``"``, ``%`` and characters outside printable ASCII are encoded, as UTF-8 bytes
    with upper-case hex. Raises ``UnicodeEncodeError`` for lone surrogates.
    """
    if _NEEDS_ENCODING.search(text) is None:
        return text
    return quote(text, safe=_SAFE)


def percent_decode(text: str) -> str:
    """Undo one round of percent-encoding (HTTP binding 3.1.3.2).

    Any ``%XX`` is decoded, upper or lower case; a ``%`` not followed by two hex digits is kept
    as it is. Raises ``UnicodeDecodeError`` when the decoded bytes are not valid UTF-8 (the
    binding says such values, overlong encodings included, MUST be rejected).
    """
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8")


def unquote_header(text: str) -> str:
    """Unescape an RFC 7230 section 3.2.6 quoted-string; other values are returned unchanged.

    HTTP binding 3.1.3.2: receivers MUST accept double-quoted values (older senders produced
    them). Raises ``ValueError`` for an opening quote without its closing quote.
    """
    if not text.startswith('"'):
        return text
    if len(text) < 2 or not text.endswith('"') or _odd_backslashes(text):
        raise ValueError(f"unterminated quoted string: {text!r}")
    return _QUOTED_PAIR.sub(r"\1", text[1:-1])


def _odd_backslashes(text: str) -> bool:
    # A closing quote preceded by an odd run of backslashes is escaped, not closing.
    run = len(text) - 1 - len(text[:-1].rstrip("\\"))
    return run % 2 == 1

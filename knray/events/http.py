"""CloudEvents over HTTP: binary, structured and batched content modes.

Follows cloudevents/bindings/http-protocol-binding.md (v1.0.2). Parsing never adds, drops or
rewrites an attribute: binary-mode values stay the strings received (``time`` included) and the
body is kept as bytes, decoded only when the data is read. Headers are a ``Mapping[str, str]``
(the SDK's ``HTTPMessage.headers`` works as it is); names are case-insensitive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from knray.errors import InvalidEventError
from knray.events.event import CloudEvent
from knray.events.headers import (
    attribute_to_string,
    percent_decode,
    percent_encode,
    unquote_header,
)
from knray.events.json_format import (
    BATCH_CONTENT_TYPE,
    CONTENT_TYPE,
    from_json,
    from_json_batch,
    to_json,
    to_json_batch,
)

__all__ = [
    "from_http",
    "from_http_batch",
    "from_http_binary",
    "from_http_structured",
    "to_http_batch",
    "to_http_binary",
    "to_http_structured",
]

# Section 3.1.3.1: attribute headers are the attribute name prefixed with "ce-".
_PREFIX: Final = "ce-"
_CONTENT_TYPE: Final = "content-type"
# Section 3: the media-type prefixes that select structured and batched mode.
_STRUCTURED_PREFIX: Final = "application/cloudevents"
_BATCH_PREFIX: Final = "application/cloudevents-batch"
# RFC 7230 section 3.2: a header value is visible ASCII, space and tab (no CR or LF).
_NOT_HEADER_TEXT: Final = re.compile(r"[^\t\x20-\x7e]")


def from_http(headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
    """Parse an HTTP request or response in any content mode; a batch yields several events.

    The mode comes from ``Content-Type`` (binding section 3): ``application/cloudevents-batch``
    is batched, ``application/cloudevents`` structured, anything else binary.
    """
    media_type = _media_type(_content_type(headers))
    if media_type.startswith(_BATCH_PREFIX):
        _require_format(media_type, BATCH_CONTENT_TYPE)
        return from_json_batch(body)
    if media_type.startswith(_STRUCTURED_PREFIX):
        if media_type == CONTENT_TYPE:
            return [from_json(body)]
        # Section 3: an event format we cannot read MAY still be handled as binary.
        if not any(name.lower() == "ce-specversion" for name in headers):
            _require_format(media_type, CONTENT_TYPE)
    return [from_http_binary(headers, body)]


def from_http_binary(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Parse a binary-mode message: ``ce-*`` headers, ``Content-Type`` and the data as body."""
    attributes: dict[str, str] = {}
    content_type = None
    for name, raw in headers.items():
        key = name.lower()
        if key.startswith(_PREFIX):
            attribute = key[3:]  # len("ce-")
            if raw and (raw[0] == '"' or "%" in raw):
                attributes[attribute] = _decode_value(attribute, raw)
            else:
                attributes[attribute] = raw
        elif key == _CONTENT_TYPE:
            content_type = raw
    if content_type:
        # Section 3.1.1: Content-Type is datacontenttype; ce-datacontenttype MUST NOT be sent too.
        if "datacontenttype" in attributes:
            raise InvalidEventError(
                "both Content-Type and ce-datacontenttype are present", attribute="datacontenttype"
            )
        attributes["datacontenttype"] = content_type
    return CloudEvent.from_encoded(attributes, body)


def from_http_structured(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Parse a structured-mode message (``Content-Type: application/cloudevents+json``)."""
    _require_format(_media_type(_content_type(headers)), CONTENT_TYPE)
    return from_json(body)


def from_http_batch(headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
    """Parse a batched-mode message (``Content-Type: application/cloudevents-batch+json``)."""
    _require_format(_media_type(_content_type(headers)), BATCH_CONTENT_TYPE)
    return from_json_batch(body)


def to_http_binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Headers and body of the event in binary mode; the body is the data's bytes as received."""
    headers: dict[str, str] = {}
    for name, value in event.get_attributes().items():
        if name == "datacontenttype":
            # Section 3.1.1: sent as Content-Type, which is not percent-encoded.
            if _NOT_HEADER_TEXT.search(value):
                raise InvalidEventError(
                    f"datacontenttype {value!r} cannot be an HTTP header value",
                    attribute=name,
                )
            headers[_CONTENT_TYPE] = value
            continue
        try:
            headers[_PREFIX + name] = percent_encode(attribute_to_string(value))
        except UnicodeEncodeError:
            raise InvalidEventError(
                f"attribute {name!r} is not valid Unicode text", attribute=name
            ) from None
    return headers, event.encoded_data()


def to_http_structured(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Headers and body of the event in structured mode (JSON format)."""
    return {_CONTENT_TYPE: CONTENT_TYPE}, to_json(event)


def to_http_batch(events: Iterable[CloudEvent]) -> tuple[dict[str, str], bytes]:
    """Headers and body of the events in batched mode (JSON batch format)."""
    return {_CONTENT_TYPE: BATCH_CONTENT_TYPE}, to_json_batch(events)


def _decode_value(attribute: str, value: str) -> str:
    # Section 3.1.3.2: unescape a double-quoted string, then one round of percent-decoding.
    try:
        return percent_decode(unquote_header(value))
    except ValueError as error:  # UnicodeDecodeError included
        raise InvalidEventError(
            f"header {_PREFIX}{attribute}: cannot decode {value!r}: {error}", attribute=attribute
        ) from None


def _content_type(headers: Mapping[str, str]) -> str | None:
    value = headers.get(_CONTENT_TYPE)
    if value is None:
        for name, item in headers.items():
            if name.lower() == _CONTENT_TYPE:
                return item
    return value


def _media_type(content_type: str | None) -> str:
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _require_format(media_type: str, expected: str) -> None:
    if media_type != expected:
        raise InvalidEventError(
            f"unsupported Content-Type {media_type or '(none)'!r}: expected {expected!r}"
        )

"""The JSON event format and the JSON batch format (cloudevents/formats/json-format.md).

Decoding keeps every attribute as it arrived: JSON types stay (strings, booleans, integers),
``time`` stays the received string, nothing is added. JSON data (``datacontenttype`` absent or
``*/json``, ``*/*+json``) stays the JSON value; ``data_base64`` becomes bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from knray.errors import InvalidEventError
from knray.events.event import CloudEvent, is_json_content_type
from knray.events.headers import attribute_to_string

__all__ = [
    "BATCH_CONTENT_TYPE",
    "CONTENT_TYPE",
    "from_json",
    "from_json_batch",
    "from_json_object",
    "to_json",
    "to_json_batch",
    "to_json_object",
]

# Section 3: media type of one event; section 4.2: media type of a batch.
CONTENT_TYPE: Final = "application/cloudevents+json"
BATCH_CONTENT_TYPE: Final = "application/cloudevents-batch+json"

_BINARY: Final = (bytes, bytearray, memoryview)


def from_json_object(obj: Any) -> CloudEvent:
    """The event held by a decoded JSON object (one element of a batch, for instance)."""
    if not isinstance(obj, Mapping):
        raise InvalidEventError(
            f"a structured CloudEvent must be a JSON object, got {type(obj).__name__}"
        )
    attributes = dict(obj)
    data = attributes.pop("data", None)
    data_base64 = attributes.pop("data_base64", None)
    if None in attributes.values():
        # Section 2.2: a null attribute MUST be treated as unset.
        attributes = {name: value for name, value in attributes.items() if value is not None}
    if data_base64 is not None:
        # Section 3.1.1: "data" and "data_base64" are mutually exclusive.
        if data is not None:
            raise InvalidEventError(
                "an event cannot have both 'data' and 'data_base64'", attribute="data_base64"
            )
        data = _b64decode(data_base64, "data_base64")
    elif (
        attributes.get("specversion") == "0.3"
        and isinstance(data, str)
        and str(attributes.get("datacontentencoding", "")).lower() == "base64"
    ):
        # JSON format 0.3, section 3.1: binary data is a Base64 string in "data".
        data = _b64decode(data, "datacontentencoding")
    return CloudEvent(attributes, data)


def to_json_object(event: CloudEvent) -> dict[str, Any]:
    """The event as a JSON-ready dict: attributes in their JSON types plus the data member."""
    obj: dict[str, Any] = {}
    for name, value in event.get_attributes().items():
        # Section 2.2: Boolean, Integer and String map to JSON types; others to strings.
        obj[name] = value if isinstance(value, str | bool | int) else attribute_to_string(value)
    data = event.get_data()
    if data is None:
        return obj
    content_type = event.get_datacontenttype()
    if isinstance(data, _BINARY):
        _put_binary(obj, bytes(data))
    elif not is_json_content_type(content_type):
        # Section 3.1.1: non-JSON data is stored as a string.
        if isinstance(data, str):
            obj["data"] = data
        else:
            raw = event.encoded_data()
            try:
                obj["data"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                _put_binary(obj, raw)
    elif isinstance(data, str) and content_type is not None and not _is_json_string(event):
        # A body declared as JSON that did not parse: keep its exact bytes.
        _put_binary(obj, event.encoded_data())
    else:
        # Section 3.1.1: JSON data is stored as the JSON value itself.
        obj["data"] = data
    return obj


def from_json(body: bytes | str) -> CloudEvent:
    """Decode one event in the JSON format (``application/cloudevents+json``)."""
    return from_json_object(_loads(body))


def to_json(event: CloudEvent) -> bytes:
    """Encode one event in the JSON format, UTF-8."""
    return _dumps(to_json_object(event))


def from_json_batch(body: bytes | str) -> list[CloudEvent]:
    """Decode a JSON batch (``application/cloudevents-batch+json``); it may be empty."""
    items = _loads(body)
    if not isinstance(items, list):
        raise InvalidEventError(
            f"a CloudEvents JSON batch must be a JSON array, got {type(items).__name__}"
        )
    events = []
    for index, item in enumerate(items):
        try:
            events.append(from_json_object(item))
        except InvalidEventError as error:
            raise InvalidEventError(
                f"batch event {index}: {error}", attribute=error.attribute
            ) from error
    _check_same_specversion(events)
    return events


def to_json_batch(events: Iterable[CloudEvent]) -> bytes:
    """Encode events as a JSON batch, UTF-8."""
    events = list(events)
    _check_same_specversion(events)
    return _dumps([to_json_object(event) for event in events])


def _check_same_specversion(events: list[CloudEvent]) -> None:
    # HTTP binding 3.3.2: all batched events MUST have the same specversion.
    versions = {event.get_specversion() for event in events}
    if len(versions) > 1:
        raise InvalidEventError(
            f"events of one batch must share a specversion, got {sorted(versions)}",
            attribute="specversion",
        )


def _put_binary(obj: dict[str, Any], data: bytes) -> None:
    encoded = base64.b64encode(data).decode("ascii")
    if obj.get("specversion") == "0.3":
        # 0.3 has no data_base64: Base64 text in "data", declared by datacontentencoding.
        obj["datacontentencoding"] = "base64"
        obj["data"] = encoded
    else:
        # Section 3.1.1: Binary data goes to "data_base64".
        obj["data_base64"] = encoded


def _is_json_string(event: CloudEvent) -> bool:
    # Decoded str data of a JSON content type: a JSON string literal, or a body that did not
    # parse as JSON and fell back to text.
    return event.encoded_data().lstrip().startswith(b'"')


def _b64decode(value: Any, attribute: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidEventError(
            f"{attribute!r} must be a Base64 string, got {type(value).__name__}",
            attribute=attribute,
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidEventError(
            f"{attribute!r} is not valid Base64: {error}", attribute=attribute
        ) from None


def _loads(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidEventError(f"malformed JSON in structured CloudEvent: {error}") from None


def _dumps(obj: Any) -> bytes:
    # default=str matches CloudEvent.encoded_data(), so binary and structured mode carry the
    # same data for values that JSON cannot hold natively.
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: only the escaped form is valid UTF-8
        return json.dumps(obj, separators=(",", ":"), default=str).encode("ascii")

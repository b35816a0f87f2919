"""CloudEvents in Kafka records: binary and structured content modes.

Follows cloudevents/bindings/kafka-protocol-binding.md. Parsing never adds, drops or rewrites an
attribute. In particular the record key is *not* copied into ``partitionkey``: the binding maps
only ``partitionkey`` -> key (section 3.1), and Knative's KafkaSource passes records that
already are CloudEvents through unchanged (it sets ``partitionkey`` and ``key`` only on events
it builds from plain records, which knray does in ``knray.sources``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from knray.errors import InvalidEventError
from knray.events.event import CloudEvent
from knray.events.headers import attribute_to_string
from knray.events.json_format import CONTENT_TYPE, from_json, to_json

__all__ = ["KafkaRecord", "from_kafka", "is_cloudevent", "to_kafka_binary", "to_kafka_structured"]

# Section 3.2.3.1: attribute headers are the attribute name prefixed with "ce_".
_PREFIX: Final = "ce_"
_CONTENT_TYPE: Final = "content-type"
_SPECVERSION_HEADER: Final = "ce_specversion"
# Section 3: a content-type with this prefix (case-insensitive) selects structured mode.
_STRUCTURED_PREFIX: Final = "application/cloudevents"
_STRUCTURED_PREFIX_BYTES: Final = _STRUCTURED_PREFIX.encode()
_CONTENT_TYPE_JSON: Final = CONTENT_TYPE.encode()


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """The parts of a Kafka record that carry an event: key, value and headers (in order).

    ``value`` is None for a record without value (binary mode, event without data).
    The SDK's ``KafkaMessage`` holds headers in a dict and needs a value, so it cannot
    represent repeated headers or tombstones; aiokafka's records map field for field.
    """

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def is_cloudevent(record: KafkaRecord) -> bool:
    """True when the record claims to be a CloudEvent in either content mode.

    Structured: a ``content-type`` header starting with ``application/cloudevents``;
    binary: a ``ce_specversion`` header (as the Java SDK that Knative uses decides). This
    inspects headers only; :func:`from_kafka` may still reject the record as invalid, and
    Knative's KafkaSource then treats it as a plain record.
    """
    for name, value in record.headers:
        key = name.lower()
        if key == _SPECVERSION_HEADER:
            return True
        if key == _CONTENT_TYPE and _is_structured(value):
            return True
    return False


def from_kafka(record: KafkaRecord) -> CloudEvent:
    """Parse a record in binary mode, or structured mode for ``application/cloudevents+json``."""
    raw_attributes: dict[str, bytes] = {}
    content_type: bytes | None = None
    for name, raw in record.headers:
        key = name.lower()
        if key.startswith(_PREFIX):
            raw_attributes[key[3:]] = raw  # len("ce_")
        elif key == _CONTENT_TYPE:
            content_type = raw
    if content_type is not None and _is_structured(content_type):
        media_type = _text(content_type, "datacontenttype").split(";", 1)[0].strip().lower()
        if media_type == CONTENT_TYPE:
            if record.value is None:
                raise InvalidEventError("structured-mode record has no value")
            # Section 3.3: headers are ignored; the value holds the whole event.
            return from_json(record.value)
        # Section 3: an unknown event format MAY be forwarded as binary.
        if "specversion" not in raw_attributes:
            raise InvalidEventError(
                f"unsupported event format {media_type!r}: expected {CONTENT_TYPE!r}"
            )
    attributes = {name: _text(raw, name) for name, raw in raw_attributes.items()}
    if content_type is not None:
        # Section 3.2.1: the content-type header is datacontenttype.
        if "datacontenttype" in attributes:
            raise InvalidEventError(
                "both content-type and ce_datacontenttype headers are present",
                attribute="datacontenttype",
            )
        attributes["datacontenttype"] = _text(content_type, "datacontenttype")
    # Section 3.2.2: the value is the data; no value means no data.
    return CloudEvent.from_encoded(attributes, record.value)


def to_kafka_binary(event: CloudEvent, *, key: bytes | None = None) -> KafkaRecord:
    """The event as a binary-mode record; an event without data gives a record without value.

    The key is ``key`` when given, else the ``partitionkey`` attribute (section 3.1 key mapper;
    the attribute stays in the headers too), else None.
    """
    headers: list[tuple[str, bytes]] = []
    for name, value in event.get_attributes().items():
        text = attribute_to_string(value)
        try:
            encoded = text.encode("utf-8")  # section 3.2.3: header values are UTF-8
        except UnicodeEncodeError:
            raise InvalidEventError(
                f"attribute {name!r} is not valid Unicode text", attribute=name
            ) from None
        if name == "datacontenttype":
            headers.append((_CONTENT_TYPE, encoded))
        else:
            headers.append((_PREFIX + name, encoded))
    # Section 3.2.2: an event without data is a record without value.
    value = event.encoded_data() or None
    return KafkaRecord(key=_record_key(event, key), value=value, headers=tuple(headers))


def to_kafka_structured(event: CloudEvent, *, key: bytes | None = None) -> KafkaRecord:
    """The event as a structured-mode record (JSON format); key as for :func:`to_kafka_binary`."""
    return KafkaRecord(
        key=_record_key(event, key),
        value=to_json(event),
        headers=((_CONTENT_TYPE, _CONTENT_TYPE_JSON),),
    )


def _record_key(event: CloudEvent, key: bytes | None) -> bytes | None:
    if key is not None:
        return key
    partition_key = event.get_extension("partitionkey")
    if partition_key is None:
        return None
    if isinstance(partition_key, bytes):
        return partition_key
    return attribute_to_string(partition_key).encode("utf-8")


def _is_structured(content_type: bytes) -> bool:
    head = content_type[: len(_STRUCTURED_PREFIX_BYTES)]
    return head.lower() == _STRUCTURED_PREFIX_BYTES


def _text(raw: bytes, attribute: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEventError(
            f"header for {attribute!r} is not valid UTF-8", attribute=attribute
        ) from None
    except AttributeError:  # a null header value
        raise InvalidEventError(
            f"header for {attribute!r} has no value", attribute=attribute
        ) from None

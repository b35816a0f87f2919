"""CloudEvents in messages that carry a header map: RabbitMQ, NATS, RocketMQ, Redis entries.

The protocol bindings of these servers share one shape (binary content mode: every attribute
but ``datacontenttype`` in a header named prefix + attribute, ``datacontenttype`` in the
message's content type, the data in the body; structured mode: a content type starting with
``application/cloudevents``, the whole event in the body):

- RabbitMQ: prefix ``ce-``, AMQP ``content_type`` property (eventing-rabbitmq
  ``cloudevents-protocol-spec/spec.md``, the binding the ``cloudevents`` SDK implements in
  ``cloudevents.core.bindings.rabbitmq``);
- NATS: prefix ``ce-``, ``Content-Type`` header (cloudevents/spec ``nats-protocol-binding.md``);
- RocketMQ: prefix ``CE_`` on user properties (cloudevents/spec ``rocketmq-protocol-binding.md``).

Header names are matched case-insensitively. Parsing never adds, drops or rewrites an
attribute (the SDK's parsers add ``time``; see DESIGN), so this module parses and the SDK's
binding names the headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from cloudevents.core.bindings.rabbitmq import CE_PREFIX as RABBITMQ_PREFIX

from knray.errors import InvalidEventError
from knray.events.event import CloudEvent
from knray.events.json_format import CONTENT_TYPE, from_json

__all__ = ["NATS_PREFIX", "RABBITMQ_PREFIX", "ROCKETMQ_PREFIX", "from_message", "message_time"]

NATS_PREFIX: Final = "ce-"
ROCKETMQ_PREFIX: Final = "CE_"
_STRUCTURED_PREFIX: Final = "application/cloudevents"


def from_message(
    headers: Mapping[str, Any], content_type: str | None, body: bytes | None, *, prefix: str
) -> CloudEvent | None:
    """The CloudEvent a message carries, or None when the message is not a CloudEvent.

    Raises InvalidEventError when the message claims to be a CloudEvent (a prefixed
    ``specversion`` header, or a structured content type) but is not a valid one.
    """
    lowered = prefix.lower()
    attributes: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key.startswith(lowered) and value is not None:
            attributes[key[len(lowered) :]] = _text(value)
    if content_type and content_type.lower().startswith(_STRUCTURED_PREFIX):
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != CONTENT_TYPE:
            raise InvalidEventError(f"unsupported event format {media_type!r}")
        if not body:
            raise InvalidEventError("structured-mode message has no body")
        return from_json(body)
    if "specversion" not in attributes:
        return None
    if content_type:
        if "datacontenttype" in attributes:
            raise InvalidEventError(
                "both a content type and a datacontenttype header are present",
                attribute="datacontenttype",
            )
        attributes["datacontenttype"] = content_type
    return CloudEvent.from_encoded(attributes, body)


def message_time(timestamp: datetime) -> str:
    """A message server's timestamp as a CloudEvents ``time`` (RFC 3339, UTC, ``Z``); a naive
    timestamp is taken as UTC."""
    moment = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEventError("a CloudEvents header is not valid UTF-8") from None
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)

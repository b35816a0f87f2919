"""knray's CloudEvent value: immutable, validated, and never altered in transit."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from knray.errors import InvalidEventError

if TYPE_CHECKING:
    from cloudevents.core.base import BaseCloudEvent

__all__ = [
    "CONTEXT_ATTRIBUTES",
    "REQUIRED_ATTRIBUTES",
    "SPEC_VERSIONS",
    "CloudEvent",
    "is_json_content_type",
]

# CloudEvents spec v1.0.2, "Required Attributes".
REQUIRED_ATTRIBUTES: Final = ("id", "source", "specversion", "type")
# Spec v1.0.2 context attributes (required and optional); everything else is an extension.
CONTEXT_ATTRIBUTES: Final = frozenset(
    {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"}
)
# 1.0 is current; 0.3 is still accepted so older producers can pass through unchanged.
SPEC_VERSIONS: Final = frozenset({"1.0", "0.3"})
_STRING_ATTRIBUTES: Final = frozenset(
    {
        "id",
        "source",
        "specversion",
        "type",
        "datacontenttype",
        "dataschema",
        "subject",
        "schemaurl",
        "datacontentencoding",
    }
)
# Spec "Attribute Naming Convention": lower-case ASCII letters or digits only.
_ATTRIBUTE_NAME: Final = re.compile(r"[a-z0-9]+")
# Spec "Type System": Integer is a 32-bit signed value.
_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
_JSON_CONTENT_TYPE: Final = re.compile(r"^(application|text)/([a-z0-9.+-]+\+)?json(\s*;.*)?$", re.I)
_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_UNSET: Final[Any] = object()


def is_json_content_type(content_type: str | None) -> bool:
    """True for ``application/json``, ``text/json`` and ``*/*+json`` (with parameters)."""
    return content_type is None or bool(_JSON_CONTENT_TYPE.match(content_type))


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; raise ValueError when it is not one."""
    if not _RFC3339.match(text):
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    return datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))


def _validate(attributes: Mapping[str, Any]) -> None:
    for name in REQUIRED_ATTRIBUTES:
        value = attributes.get(name)
        if value is None:
            raise InvalidEventError(f"missing required attribute {name!r}", attribute=name)
    _validate_items(attributes)


# Attribute names already checked: events repeat a handful of names, so the regex runs once
# per name instead of once per attribute of every event. Bounded so odd inputs cannot grow it.
_CHECKED_NAMES: set[str] = set()
_CHECKED_NAMES_MAX: Final = 4096


def _check_name(name: Any) -> None:
    if name in _CHECKED_NAMES:
        return
    if not isinstance(name, str) or not _ATTRIBUTE_NAME.fullmatch(name):
        raise InvalidEventError(
            f"invalid attribute name {name!r}: names are lower-case letters and digits",
            attribute=str(name),
        )
    if name in {"data", "data_base64"}:
        raise InvalidEventError("'data' is reserved and cannot be an attribute", attribute=name)
    if len(_CHECKED_NAMES) < _CHECKED_NAMES_MAX:
        _CHECKED_NAMES.add(name)


# A tuple, not ``bool | str | ...``: a union expression is rebuilt on every evaluation.
_PLAIN_TYPES: Final = (bool, str, bytes, datetime)


def _validate_items(attributes: Mapping[str, Any]) -> None:
    """Check names and value types (not presence of the required attributes)."""
    specversion = attributes.get("specversion")
    if specversion is not None and specversion not in SPEC_VERSIONS:
        raise InvalidEventError(
            f"attribute 'specversion': unsupported value {specversion!r} "
            f"(supported: {', '.join(sorted(SPEC_VERSIONS))})",
            attribute="specversion",
        )
    for name, value in attributes.items():
        _check_name(name)
        if isinstance(value, str):
            if not value and name in _STRING_ATTRIBUTES:
                raise InvalidEventError(f"attribute {name!r} must not be empty", attribute=name)
            if name == "time":
                try:
                    parse_timestamp(value)
                except ValueError as error:
                    raise InvalidEventError(f"attribute 'time': {error}", attribute=name) from None
            continue
        if name in _STRING_ATTRIBUTES:
            raise InvalidEventError(
                f"attribute {name!r} must be a string, got {type(value).__name__}",
                attribute=name,
            )
        if name == "time":
            if not isinstance(value, datetime):
                raise InvalidEventError(
                    f"attribute 'time' must be an RFC 3339 string or datetime, "
                    f"got {type(value).__name__}",
                    attribute=name,
                )
            if value.tzinfo is None:
                raise InvalidEventError("attribute 'time' must carry a time zone", attribute=name)
        elif isinstance(value, _PLAIN_TYPES):
            continue
        elif isinstance(value, int):
            if not _INT32_MIN <= value <= _INT32_MAX:
                raise InvalidEventError(
                    f"attribute {name!r}: integer {value} is outside the 32-bit range",
                    attribute=name,
                )
        else:
            raise InvalidEventError(
                f"attribute {name!r} has unsupported type {type(value).__name__} "
                "(use str, bool, int, bytes or datetime)",
                attribute=name,
            )


def _decode_body(body: bytes, content_type: str | None) -> Any:
    # The cloudevents SDK's JSONFormat.read_data rules: JSON when the content type says so
    # and it parses, else UTF-8 text, else the bytes.
    if not body:
        return None
    if is_json_content_type(content_type):
        try:
            return json.loads(body)
        except ValueError:
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body


def _encode_data(data: Any, content_type: str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str) and not is_json_content_type(content_type):
        return data.encode("utf-8")
    if isinstance(data, str) and content_type is None:
        return data.encode("utf-8")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode()


class CloudEvent:
    """A CloudEvent: attributes (context attributes and extensions) and optional data.

    Immutable and validated on construction. It never adds, drops or rewrites an attribute: a
    missing ``id`` or ``time`` stays missing. The read API mirrors the ``cloudevents`` SDK's
    core event (``get_id()``, ``get_data()``, ...); :meth:`to_sdk` and :meth:`from_sdk` convert.
    """

    __slots__ = ("_attributes", "_body", "_data", "_hash")

    _attributes: dict[str, Any]
    _data: Any
    _body: bytes | None
    _hash: int | None

    def __init__(self, attributes: Mapping[str, Any], data: Any = None) -> None:
        attrs = dict(attributes)
        _validate(attrs)
        object.__setattr__(self, "_attributes", attrs)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_body", None)
        object.__setattr__(self, "_hash", None)

    @classmethod
    def from_encoded(
        cls, attributes: Mapping[str, Any], body: bytes | None, *, validate: bool = True
    ) -> CloudEvent:
        """An event whose data is still encoded; decoded on first :meth:`get_data`.

        The bytes are kept so the event can be sent on exactly as it arrived.
        """
        attrs = dict(attributes)
        if validate:
            _validate(attrs)
        event = cls.__new__(cls)
        object.__setattr__(event, "_attributes", attrs)
        object.__setattr__(event, "_data", _UNSET if body else None)
        object.__setattr__(event, "_body", body or None)
        object.__setattr__(event, "_hash", None)
        return event

    # --- the SDK's read API -------------------------------------------------------------
    def get_id(self) -> str:
        return str(self._attributes["id"])

    def get_source(self) -> str:
        return str(self._attributes["source"])

    def get_type(self) -> str:
        return str(self._attributes["type"])

    def get_specversion(self) -> str:
        return str(self._attributes["specversion"])

    def get_datacontenttype(self) -> str | None:
        value = self._attributes.get("datacontenttype")
        return None if value is None else str(value)

    def get_dataschema(self) -> str | None:
        value = self._attributes.get("dataschema")
        return None if value is None else str(value)

    def get_subject(self) -> str | None:
        value = self._attributes.get("subject")
        return None if value is None else str(value)

    def get_time(self) -> datetime | None:
        value = self._attributes.get("time")
        if value is None or isinstance(value, datetime):
            return value
        return parse_timestamp(str(value))

    def get_extension(self, extension_name: str) -> Any:
        return self._attributes.get(extension_name)

    def get_data(self) -> Any:
        data = self._data
        if data is _UNSET:
            assert self._body is not None
            data = _decode_body(self._body, self._attributes.get("datacontenttype"))
            object.__setattr__(self, "_data", data)
        return data

    def get_attributes(self) -> dict[str, Any]:
        return dict(self._attributes)

    # --- knray additions ----------------------------------------------------------------
    def get(self, name: str, default: Any = None) -> Any:
        """The value of attribute ``name`` as it arrived, or ``default``."""
        return self._attributes.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self._attributes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._attributes

    def __iter__(self) -> Iterator[str]:
        return iter(self._attributes)

    @property
    def attributes(self) -> Mapping[str, Any]:
        """Read-only view of every attribute (context attributes and extensions)."""
        return MappingProxyType(self._attributes)

    def encoded_data(self) -> bytes:
        """The data as bytes: the original bytes when the event came off a wire."""
        if self._body is not None:
            return self._body
        return _encode_data(self._data, self._attributes.get("datacontenttype"))

    def evolve(self, attributes: Mapping[str, Any] | None = None, data: Any = _UNSET) -> CloudEvent:
        """A new event with some attributes set (a value of None removes one) or new data."""
        attrs = dict(self._attributes)
        changed: dict[str, Any] = {}
        for name, value in (attributes or {}).items():
            if value is None:
                if name in REQUIRED_ATTRIBUTES:
                    raise InvalidEventError(
                        f"cannot remove required attribute {name!r}", attribute=name
                    )
                attrs.pop(name, None)
            else:
                attrs[name] = changed[name] = value
        # This event is valid already: only what changed needs checking.
        _validate_items(changed)
        event = CloudEvent.__new__(CloudEvent)
        object.__setattr__(event, "_attributes", attrs)
        object.__setattr__(event, "_hash", None)
        if data is _UNSET:
            object.__setattr__(event, "_body", self._body)
            object.__setattr__(event, "_data", self._data)
        else:
            object.__setattr__(event, "_body", None)
            object.__setattr__(event, "_data", data)
        return event

    def to_sdk(self) -> BaseCloudEvent:
        """This event as the ``cloudevents`` SDK's core event (v1.0 or v0.3)."""
        from cloudevents.core.v03.event import CloudEvent as SDKEventV03  # noqa: PLC0415
        from cloudevents.core.v1.event import CloudEvent as SDKEventV1  # noqa: PLC0415

        attrs = dict(self._attributes)
        if isinstance(attrs.get("time"), str):
            attrs["time"] = parse_timestamp(attrs["time"])
        if attrs["specversion"] == "0.3":
            return SDKEventV03(attrs, self.get_data())
        return SDKEventV1(attrs, self.get_data())

    @classmethod
    def from_sdk(cls, event: BaseCloudEvent) -> CloudEvent:
        """Convert an event of the ``cloudevents`` SDK (any object with its read API)."""
        return cls(event.get_attributes(), event.get_data())

    # --- value semantics ----------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("CloudEvent is immutable; use evolve() to derive a new event")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("CloudEvent is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CloudEvent):
            return NotImplemented
        if self._attributes != other._attributes:
            return False
        if self._body is not None and other._body is not None:
            return self._body == other._body
        return bool(self.get_data() == other.get_data())

    def __hash__(self) -> int:
        cached: int | None = self._hash
        if cached is None:
            cached = hash(tuple(sorted((k, str(v)) for k, v in self._attributes.items())))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __reduce__(self) -> tuple[Any, ...]:
        # Ray and multiprocessing pickle events between processes: keep the encoded bytes.
        if self._body is not None:
            return (_restore_encoded, (self._attributes, self._body))
        return (_restore, (self._attributes, self._data))

    def __repr__(self) -> str:
        attrs = ", ".join(f"{k}={v!r}" for k, v in self._attributes.items())
        return f"CloudEvent({attrs})"


def _restore(attributes: dict[str, Any], data: Any) -> CloudEvent:
    event = CloudEvent.from_encoded(attributes, None, validate=False)
    object.__setattr__(event, "_data", data)
    return event


def _restore_encoded(attributes: dict[str, Any], body: bytes) -> CloudEvent:
    return CloudEvent.from_encoded(attributes, body, validate=False)

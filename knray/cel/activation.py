"""The ``event`` variable a CEL filter sees, built from a :class:`~knray.CloudEvent`.

It follows Dapr's CEL routing, which evaluates rules against the JSON form of the CloudEvent:
one variable ``event`` whose fields are the context attributes and extensions, plus ``data``.
Attribute values are those of the CloudEvents JSON format: String, URI and URI-reference as
strings, Boolean as bool, Integer as int, Timestamp as its RFC 3339 string (exactly as it
arrived when it arrived as a string), Binary as its base64 string. ``event.data`` is the parsed
JSON for a JSON content type, else the text (or bytes when it is not UTF-8); an event without
data (or with JSON ``null``) has no ``data`` field.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from knray.cel.references import VARIABLE, Projection
from knray.events import CloudEvent

__all__ = ["ActivationBuilder", "activation_builder", "attribute_value"]

ActivationBuilder = Callable[[CloudEvent], dict[str, Any]]

_DATA: Final = "data"


def attribute_value(value: Any) -> Any:
    """An attribute value as the CloudEvents JSON format writes it."""
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _project(value: Any, projection: Projection) -> Any:
    if type(value) is not dict:
        return value
    selected: dict[str, Any] = {}
    for name, deeper in projection.items():
        if name in value:
            item = value[name]
            selected[name] = item if deeper is None else _project(item, deeper)
    return selected


def _whole_event(event: CloudEvent) -> dict[str, Any]:
    fields = event.get_attributes()
    for name, value in fields.items():
        if type(value) is not str:
            fields[name] = attribute_value(value)
    data = event.get_data()
    if data is not None:
        fields[_DATA] = data
    return {VARIABLE: fields}


def activation_builder(projection: Projection | None) -> ActivationBuilder:
    """A function building the variables for one event, copying only what ``projection`` names.

    ``None`` means the expression may read any part of the event. The event's data is decoded
    only when the projection names ``data``.
    """
    if projection is None:
        return _whole_event
    names = tuple(name for name in projection if name != _DATA)
    if _DATA not in projection:

        def attributes_only(event: CloudEvent) -> dict[str, Any]:
            get = event.get
            fields: dict[str, Any] = {}
            for name in names:
                value = get(name)
                if value is not None:
                    fields[name] = value if type(value) is str else attribute_value(value)
            return {VARIABLE: fields}

        return attributes_only

    data_projection = projection[_DATA]

    def with_data(event: CloudEvent) -> dict[str, Any]:
        get = event.get
        fields: dict[str, Any] = {}
        for name in names:
            value = get(name)
            if value is not None:
                fields[name] = value if type(value) is str else attribute_value(value)
        data = event.get_data()
        if data is not None:
            fields[_DATA] = data if data_projection is None else _project(data, data_projection)
        return {VARIABLE: fields}

    return with_data

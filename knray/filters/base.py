"""The Filter protocol every trigger filter dialect implements, and attribute reading."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from knray.events import CloudEvent

__all__ = ["Filter", "MatchAll", "SingleAttributeFilter", "attribute_text"]


@runtime_checkable
class Filter(Protocol):
    """Decides whether an event passes. Errors inside a filter mean "no match" (fail closed)."""

    def match(self, event: CloudEvent) -> bool: ...


class MatchAll:
    """The filter of a Trigger without filters: every event passes."""

    __slots__ = ()

    def match(self, event: CloudEvent) -> bool:
        return True

    def __repr__(self) -> str:
        return "MatchAll()"


def attribute_text(event: CloudEvent, name: str) -> str | None:
    """An attribute as the string it has on the wire (CloudEvents "Type System"), or None."""
    value: Any = event.get(name)
    if value is None or isinstance(value, str):
        return value
    return _canonical_string(value)


def _canonical_string(value: Any) -> str:
    # Spec v1.0.2 "Type System": canonical string encodings of non-string attribute types.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return str(value)


class SingleAttributeFilter:
    """Base of the exact, prefix and suffix dialects: one attribute tested against one value."""

    __slots__ = ("attribute", "value")

    def __init__(self, attribute: str, value: str) -> None:
        # Knative NewExactFilter & co.: "attribute and value can't be empty".
        if not attribute or not value:
            raise ValueError("attribute and value must not be empty")
        self.attribute = attribute
        self.value = value

    def match(self, event: CloudEvent) -> bool:
        text = attribute_text(event, self.attribute)
        return text is not None and self.test(text)

    def test(self, text: str) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.attribute!r}, {self.value!r})"

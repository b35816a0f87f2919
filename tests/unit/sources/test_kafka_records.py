"""Kafka record -> CloudEvent exactly as Knative's KafkaSource (InvalidCloudEventInterceptor)."""

from __future__ import annotations

import base64
import struct

import pytest

from knray.events import CloudEvent
from knray.events.kafka import KafkaRecord, to_kafka_binary, to_kafka_structured
from knray.manifests.kafka_source import KafkaSource
from knray.sources.kafka_records import (
    KeyType,
    RecordMapper,
    decode_key,
    header_extension_name,
    kafka_time,
)

MAPPER = RecordMapper(namespace="shop", name="orders")
EVENT = CloudEvent(
    {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/producer",
        "type": "order.created",
        "datacontenttype": "application/json",
        "partitionkey": "pk",
    },
    {"n": 1},
)


def plain(record: KafkaRecord, mapper: RecordMapper = MAPPER) -> CloudEvent:
    return mapper.to_event("orders-topic", 2, 17, 1_589_744_702_700, record)


def test_plain_record_gets_knative_attributes() -> None:
    event = plain(KafkaRecord(key=b"0", value=b'{"msg": "hi"}', headers=()))
    assert event.get_attributes() == {
        "specversion": "1.0",
        "id": "partition:2/offset:17",
        "source": "/apis/v1/namespaces/shop/kafkasources/orders#orders-topic",
        "type": "dev.knative.kafka.event",
        "subject": "partition:2#17",
        "time": "2020-05-17T19:45:02.7Z",
        "key": "0",
        "partitionkey": "0",
    }
    assert event.encoded_data() == b'{"msg": "hi"}'


def test_headers_become_kafkaheader_extensions_and_content_type_datacontenttype() -> None:
    record = KafkaRecord(
        key=None,
        value=b'{"a": 1}',
        headers=(("Content-Type", b"Application/JSON"), ("X-Trace_Id.9", b"abc"), ("e", b"")),
    )
    event = plain(record)
    assert event["kafkaheaderxtraceid9"] == "abc"
    assert event["kafkaheadere"] == ""
    assert event["datacontenttype"] == "application/json"
    assert "kafkaheadercontenttype" not in event
    assert "key" not in event
    assert "partitionkey" not in event
    assert event.get_data() == {"a": 1}


def test_header_names_are_sanitised_as_knative_does() -> None:
    assert header_extension_name("My-Header") == "kafkaheadermyheader"
    assert header_extension_name("Ünïcode_1") == "kafkaheaderncode1"
    assert header_extension_name("---") == "kafkaheader"


def test_non_utf8_header_values_and_keys_are_decoded_with_replacement() -> None:
    event = plain(KafkaRecord(key=b"k\xff", value=b"v", headers=(("h", b"\xfe"),)))
    assert event["key"] == event["partitionkey"] == "k\ufffd"
    assert event["kafkaheaderh"] == "\ufffd"


def test_empty_key_and_value() -> None:
    event = plain(KafkaRecord(key=b"", value=None))
    assert "key" not in event
    assert event.get_data() is None


@pytest.mark.parametrize(
    ("timestamp_ms", "expected"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_648_765_176_499, "2022-03-31T22:19:36.499Z"),
        (1_589_744_702_700, "2020-05-17T19:45:02.7Z"),
        (1_589_744_702_050, "2020-05-17T19:45:02.05Z"),
    ],
)
def test_time_is_printed_as_java_iso_offset_date_time(timestamp_ms: int, expected: str) -> None:
    assert kafka_time(timestamp_ms) == expected


@pytest.mark.parametrize(
    ("key", "key_type", "expected"),
    [
        (b"abc", KeyType.STRING, "abc"),
        (struct.pack(">i", -5), KeyType.INT, -5),
        (b"12345", KeyType.INT, "12345"),  # not 4 bytes: read as a string
        (struct.pack(">d", 1.5), KeyType.FLOAT, "1.5"),
        (struct.pack(">f", 0.5), KeyType.FLOAT, "0.5"),
        (b"\x00\x01", KeyType.BYTE_ARRAY, b"\x00\x01"),
        (b"", KeyType.STRING, None),
        (None, KeyType.INT, None),
    ],
)
def test_key_types(key: bytes | None, key_type: KeyType, expected: object) -> None:
    assert decode_key(key, key_type) == expected


def test_byte_array_key_is_sent_base64() -> None:
    mapper = RecordMapper(namespace="shop", name="orders", key_type=KeyType.BYTE_ARRAY)
    event = plain(KafkaRecord(key=b"\x00\xff", value=b"v"), mapper)
    assert event["key"] == b"\x00\xff"
    from knray.events.headers import attribute_to_string  # noqa: PLC0415

    assert attribute_to_string(event["key"]) == base64.b64encode(b"\x00\xff").decode()


@pytest.mark.parametrize("encode", [to_kafka_binary, to_kafka_structured])
def test_cloudevent_records_pass_through_unchanged(encode: object) -> None:
    record = encode(EVENT, key=b"other-key")  # type: ignore[operator]
    event = plain(record)
    assert event == EVENT
    assert event.get_attributes() == EVENT.get_attributes()


def test_an_invalid_cloudevent_record_is_mapped_as_a_plain_record() -> None:
    record = KafkaRecord(
        key=None, value=b"x", headers=(("ce_specversion", b"1.0"), ("ce_type", b"t"))
    )  # no id, no source
    event = plain(record)
    assert event["type"] == "dev.knative.kafka.event"
    assert event["kafkaheadercespecversion"] == "1.0"
    assert event["kafkaheadercetype"] == "t"
    bad_structured = KafkaRecord(
        key=None, value=b"{not json", headers=(("content-type", b"application/cloudevents+json"),)
    )
    event = plain(bad_structured)
    assert event["id"] == "partition:2/offset:17"
    assert event["datacontenttype"] == "application/cloudevents+json"


def test_ce_overrides_apply_to_plain_and_passthrough_events() -> None:
    mapper = RecordMapper(namespace="shop", name="orders", overrides={"team": "blue"})
    assert plain(KafkaRecord(key=None, value=b"v"), mapper)["team"] == "blue"
    passed = plain(to_kafka_binary(EVENT), mapper)
    assert passed.get_attributes() == {**EVENT.get_attributes(), "team": "blue"}


def test_knative_kafka_extensions_are_optional() -> None:
    mapper = RecordMapper(namespace="shop", name="orders", kafka_extensions=True)
    event = plain(to_kafka_binary(EVENT), mapper)
    assert event["knativekafkapartition"] == 2
    assert event["knativekafkaoffset"] == "17"


def test_mapper_for_source_reads_overrides_and_key_type_label() -> None:
    source = KafkaSource.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1beta1",
            "kind": "KafkaSource",
            "metadata": {
                "name": "orders",
                "namespace": "shop",
                "labels": {"kafkasources.sources.knative.dev/key-type": "int"},
            },
            "spec": {
                "bootstrapServers": ["localhost:9092"],
                "topics": ["t"],
                "sink": {"uri": "http://sink/"},
                "ceOverrides": {"extensions": {"team": "blue"}},
            },
        }
    )
    mapper = RecordMapper.for_source(source)
    assert mapper == RecordMapper("shop", "orders", KeyType.INT, {"team": "blue"})

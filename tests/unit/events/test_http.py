"""HTTP binding: binary, structured and batched modes, errors, SDK interoperability."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SDKEvent

from knray.errors import InvalidEventError
from knray.events import (
    CloudEvent,
    from_http,
    from_http_batch,
    from_http_binary,
    from_http_structured,
    to_http_batch,
    to_http_binary,
    to_http_structured,
)

REQUIRED = ("id", "source", "specversion", "type")


def attrs(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "specversion": "1.0",
        "id": "1234-1234-1234",
        "source": "/mycontext/subcontext",
        "type": "com.example.someevent",
    }
    base.update(extra)
    return base


def binary_headers(**extra: str) -> dict[str, str]:
    return {f"ce-{name}": value for name, value in attrs(**extra).items()}


# --- binary mode --------------------------------------------------------------------------


def test_binary_round_trip_keeps_attributes_and_body() -> None:
    event = CloudEvent(
        attrs(
            time="2018-04-05T03:56:24Z",
            subject="caf\u00e9 \U0001f30e",
            comexampleextension="a b%c",
            datacontenttype="application/json",
        ),
        {"message": "Hello World!"},
    )
    headers, body = to_http_binary(event)
    [parsed] = from_http(headers, body)
    assert parsed.get_attributes() == event.get_attributes()
    assert parsed.get_data() == {"message": "Hello World!"}


def test_binary_headers_follow_the_binding() -> None:
    event = CloudEvent(attrs(datacontenttype="text/plain", comexampleext="Euro \u20ac"), "Hello")
    headers, body = to_http_binary(event)
    assert headers == {
        "ce-specversion": "1.0",
        "ce-id": "1234-1234-1234",
        "ce-source": "/mycontext/subcontext",
        "ce-type": "com.example.someevent",
        "content-type": "text/plain",
        "ce-comexampleext": "Euro%20%E2%82%AC",
    }
    assert body == b"Hello"


def test_non_string_attributes_are_sent_as_canonical_strings() -> None:
    event = CloudEvent(
        attrs(
            flag=True,
            count=5,
            blob=b"\x01\x02",
            time=datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
        )
    )
    headers, _ = to_http_binary(event)
    assert headers["ce-flag"] == "true"
    assert headers["ce-count"] == "5"
    assert headers["ce-blob"] == "AQI="
    assert headers["ce-time"] == "2020-01-02T03:04:05Z"


@pytest.mark.parametrize(
    "time", ["2018-04-05t03:56:24z", "2018-04-05T05:56:24.123456789+02:00", "2018-04-05 03:56:24Z"]
)
def test_time_is_kept_as_the_string_received(time: str) -> None:
    event = from_http_binary(binary_headers(time=time), b"")
    assert event["time"] == time
    headers, _ = to_http_binary(event)
    assert headers["ce-time"] == percent_encode_space(time)


def percent_encode_space(text: str) -> str:
    return text.replace(" ", "%20")


def test_binary_body_bytes_pass_through_unchanged() -> None:
    body = b'{ "b" : 2,\n  "a" : 1.50 }'
    headers = binary_headers() | {"content-type": "application/json"}
    event = from_http_binary(headers, body)
    assert event.get_data() == {"b": 2, "a": 1.5}
    assert to_http_binary(event)[1] == body


def test_absent_attributes_are_not_invented() -> None:
    event = from_http_binary(binary_headers(), b"")
    assert set(event.get_attributes()) == set(REQUIRED)
    assert event.get_time() is None
    assert event.get_data() is None
    headers, body = to_http_binary(event)
    assert set(headers) == {f"ce-{name}" for name in REQUIRED}
    assert body == b""


def test_header_names_are_case_insensitive() -> None:
    headers = {
        "CE-SpecVersion": "1.0",
        "Ce-Id": "1",
        "ce-SOURCE": "/s",
        "cE-type": "t",
        "Content-Type": "text/plain",
        "Host": "example.com",
    }
    [event] = from_http(headers, b"hi")
    assert event.get_attributes() == {
        "specversion": "1.0",
        "id": "1",
        "source": "/s",
        "type": "t",
        "datacontenttype": "text/plain",
    }
    assert event.get_data() == "hi"


def test_percent_encoded_and_quoted_header_values_are_decoded() -> None:
    headers = binary_headers(
        subject="%c3%a9t%C3%A9", quoted='"a \\"quoted\\" value"', mixed='"50%25 off"'
    )
    event = from_http_binary(headers, b"")
    assert event["subject"] == "\u00e9t\u00e9"
    assert event["quoted"] == 'a "quoted" value'
    assert event["mixed"] == "50% off"


def test_invalid_utf8_in_a_header_is_rejected_naming_the_attribute() -> None:
    with pytest.raises(InvalidEventError) as caught:
        from_http_binary(binary_headers(subject="%C0%A0"), b"")
    assert caught.value.attribute == "subject"


def test_unterminated_quoted_header_is_rejected() -> None:
    with pytest.raises(InvalidEventError) as caught:
        from_http_binary(binary_headers(subject='"open'), b"")
    assert caught.value.attribute == "subject"


def test_content_type_and_ce_datacontenttype_together_are_rejected() -> None:
    headers = binary_headers(datacontenttype="text/plain") | {"content-type": "text/plain"}
    with pytest.raises(InvalidEventError) as caught:
        from_http(headers, b"x")
    assert caught.value.attribute == "datacontenttype"


def test_ce_datacontenttype_alone_is_accepted_and_sent_as_content_type() -> None:
    event = from_http_binary(binary_headers(datacontenttype="text/plain"), b"x")
    assert event.get_datacontenttype() == "text/plain"
    headers, _ = to_http_binary(event)
    assert headers["content-type"] == "text/plain"
    assert "ce-datacontenttype" not in headers


def test_datacontenttype_with_line_breaks_is_not_sent_as_a_header() -> None:
    event = CloudEvent(attrs(datacontenttype="text/plain\r\nx-injected: 1"), "x")
    with pytest.raises(InvalidEventError) as caught:
        to_http_binary(event)
    assert caught.value.attribute == "datacontenttype"


def test_structured_unknown_specversion_is_rejected() -> None:
    body = json.dumps(attrs(specversion="19.0")).encode()
    with pytest.raises(InvalidEventError) as caught:
        from_http({"content-type": "application/cloudevents+json"}, body)
    assert caught.value.attribute == "specversion"


@pytest.mark.parametrize("missing", REQUIRED)
def test_binary_missing_required_attribute_is_named(missing: str) -> None:
    headers = binary_headers()
    del headers[f"ce-{missing}"]
    with pytest.raises(InvalidEventError) as caught:
        from_http(headers, b"")
    assert caught.value.attribute == missing


def test_unknown_specversion_is_rejected() -> None:
    with pytest.raises(InvalidEventError) as caught:
        from_http(binary_headers(specversion="19.0"), b"")
    assert caught.value.attribute == "specversion"


@pytest.mark.parametrize("name", ["my_ext", "my-ext", "\u00e9t\u00e9"])
def test_bad_attribute_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        from_http(binary_headers() | {f"ce-{name}": "v"}, b"")
    assert caught.value.attribute == name


def test_plain_request_without_ce_headers_is_not_an_event() -> None:
    with pytest.raises(InvalidEventError) as caught:
        from_http({"content-type": "application/json"}, b"{}")
    assert caught.value.attribute in REQUIRED


def test_version_03_binary_passes_through() -> None:
    headers = binary_headers(specversion="0.3", schemaurl="https://example.com/s")
    event = from_http_binary(headers, b"")
    assert event.get_specversion() == "0.3"
    assert to_http_binary(event)[0] == headers


# --- structured mode ----------------------------------------------------------------------


STRUCTURED = {
    "specversion": "1.0",
    "type": "com.example.someevent",
    "time": "2018-04-05T03:56:24Z",
    "id": "1234-1234-1234",
    "source": "/mycontext/subcontext",
    "comexampleflag": True,
    "comexamplecount": 5,
    "datacontenttype": "application/json",
    "data": {"message": "Hello World!"},
}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cloudevents+json",
        "application/cloudevents+json; charset=utf-8",
        "Application/CloudEvents+JSON ; charset=UTF-8",
    ],
)
def test_structured_mode_is_detected_from_content_type(content_type: str) -> None:
    [event] = from_http({"Content-Type": content_type}, json.dumps(STRUCTURED).encode())
    expected = {k: v for k, v in STRUCTURED.items() if k != "data"}
    assert event.get_attributes() == expected
    assert event.get_data() == {"message": "Hello World!"}


def test_structured_keeps_json_types_of_extensions() -> None:
    event = from_http_structured(
        {"content-type": "application/cloudevents+json"}, json.dumps(STRUCTURED).encode()
    )
    assert event["comexampleflag"] is True
    assert event["comexamplecount"] == 5
    assert event["time"] == "2018-04-05T03:56:24Z"


def test_structured_ignores_ce_headers() -> None:
    headers = {"content-type": "application/cloudevents+json", "ce-id": "other", "ce-x": "y"}
    [event] = from_http(headers, json.dumps(STRUCTURED).encode())
    assert event.get_id() == "1234-1234-1234"
    assert "x" not in event


def test_structured_round_trip() -> None:
    event = CloudEvent(attrs(flag=False, n=-3, datacontenttype="text/xml"), "<a/>")
    headers, body = to_http_structured(event)
    assert headers == {"content-type": "application/cloudevents+json"}
    [parsed] = from_http(headers, body)
    assert parsed == event
    assert parsed.get_attributes() == event.get_attributes()


def test_binary_to_structured_to_binary_keeps_the_body() -> None:
    body = b'{"message":"Hello World!"}'
    original = from_http_binary(binary_headers(datacontenttype="application/json"), body)
    via_structured = from_http(*to_http_structured(original))[0]
    assert to_http_binary(via_structured) == to_http_binary(original)


def test_binary_data_survives_structured_mode_as_data_base64() -> None:
    body = bytes(range(256))
    headers = binary_headers() | {"content-type": "application/octet-stream"}
    original = from_http_binary(headers, body)
    structured_headers, structured_body = to_http_structured(original)
    assert "data_base64" in json.loads(structured_body)
    [parsed] = from_http(structured_headers, structured_body)
    assert to_http_binary(parsed) == to_http_binary(original)


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00", b""])
def test_malformed_structured_body_is_an_invalid_event(body: bytes) -> None:
    with pytest.raises(InvalidEventError, match="malformed JSON"):
        from_http({"content-type": "application/cloudevents+json"}, body)


@pytest.mark.parametrize("missing", REQUIRED)
def test_structured_missing_required_attribute_is_named(missing: str) -> None:
    obj = {k: v for k, v in STRUCTURED.items() if k != missing}
    with pytest.raises(InvalidEventError) as caught:
        from_http({"content-type": "application/cloudevents+json"}, json.dumps(obj).encode())
    assert caught.value.attribute == missing


def test_structured_with_wrong_content_type_is_rejected() -> None:
    with pytest.raises(InvalidEventError, match="Content-Type"):
        from_http_structured({"content-type": "application/json"}, json.dumps(STRUCTURED).encode())


def test_unknown_event_format_without_ce_headers_is_rejected() -> None:
    with pytest.raises(InvalidEventError, match="cloudevents\\+avro"):
        from_http({"content-type": "application/cloudevents+avro"}, b"\x00")


def test_unknown_event_format_with_ce_headers_is_treated_as_binary() -> None:
    headers = binary_headers() | {"content-type": "application/cloudevents+avro"}
    [event] = from_http(headers, b"\x00\x01")
    assert event.get_datacontenttype() == "application/cloudevents+avro"
    assert event.encoded_data() == b"\x00\x01"


# --- batched mode -------------------------------------------------------------------------


def test_batch_round_trip_with_mixed_content_types() -> None:
    events = [
        CloudEvent(attrs(id="1", datacontenttype="application/json"), {"n": 1}),
        CloudEvent(attrs(id="2", datacontenttype="text/plain"), "two"),
        CloudEvent(attrs(id="3", datacontenttype="application/octet-stream"), b"\x00\x03"),
        CloudEvent(attrs(id="4")),
    ]
    headers, body = to_http_batch(events)
    assert headers == {"content-type": "application/cloudevents-batch+json"}
    parsed = from_http(headers, body)
    assert parsed == events
    assert [event.get_data() for event in parsed] == [{"n": 1}, "two", b"\x00\x03", None]


def test_empty_batch_is_valid() -> None:
    headers, body = to_http_batch([])
    assert body == b"[]"
    assert from_http(headers, body) == []
    assert from_http_batch({"content-type": "application/cloudevents-batch+json"}, b" [ ] ") == []


def test_batch_with_mixed_specversions_is_rejected() -> None:
    events = [CloudEvent(attrs()), CloudEvent(attrs(specversion="0.3"))]
    with pytest.raises(InvalidEventError) as caught:
        to_http_batch(events)
    assert caught.value.attribute == "specversion"
    body = json.dumps([attrs(), attrs(specversion="0.3")]).encode()
    with pytest.raises(InvalidEventError) as caught:
        from_http({"content-type": "application/cloudevents-batch+json"}, body)
    assert caught.value.attribute == "specversion"


def test_batch_error_names_the_event_and_attribute() -> None:
    body = json.dumps([attrs(), {k: v for k, v in attrs().items() if k != "id"}]).encode()
    with pytest.raises(InvalidEventError, match="batch event 1") as caught:
        from_http({"content-type": "application/cloudevents-batch+json"}, body)
    assert caught.value.attribute == "id"


@pytest.mark.parametrize("body", [b"{}", b'"x"', b"[1]"])
def test_batch_must_be_an_array_of_objects(body: bytes) -> None:
    with pytest.raises(InvalidEventError):
        from_http({"content-type": "application/cloudevents-batch+json"}, body)


def test_unsupported_batch_format_is_rejected() -> None:
    with pytest.raises(InvalidEventError, match="cloudevents-batch\\+avro"):
        from_http({"content-type": "application/cloudevents-batch+avro"}, b"")


# --- pickling -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_parsed_events_pickle_with_their_bytes(mode: str) -> None:
    event = CloudEvent(attrs(datacontenttype="application/json"), {"x": [1, 2]})
    encode = to_http_binary if mode == "binary" else to_http_structured
    [parsed] = from_http(*encode(event))
    restored = pickle.loads(pickle.dumps(parsed))
    assert restored == parsed
    assert restored.get_attributes() == parsed.get_attributes()
    assert to_http_binary(restored) == to_http_binary(parsed)


# --- the cloudevents SDK on the other side ------------------------------------------------


def sdk_event() -> SDKEvent:
    return SDKEvent(
        attrs(
            time=datetime(2018, 4, 5, 3, 56, 24, tzinfo=UTC),
            subject="caf\u00e9",
            comexampleext="a b",
            datacontenttype="application/json",
        ),
        {"message": "Hello World!"},
    )


def expected_from_sdk() -> dict[str, Any]:
    return attrs(
        time="2018-04-05T03:56:24Z",
        subject="caf\u00e9",
        comexampleext="a b",
        datacontenttype="application/json",
    )


def test_sdk_binary_message_parses() -> None:
    message = sdk_http.to_binary(sdk_event(), JSONFormat())
    [event] = from_http(message.headers, message.body)
    assert event.get_attributes() == expected_from_sdk()
    assert event.get_data() == {"message": "Hello World!"}


def test_sdk_structured_message_parses() -> None:
    message = sdk_http.to_structured(sdk_event(), JSONFormat())
    [event] = from_http(message.headers, message.body)
    assert event.get_attributes() == expected_from_sdk()
    assert event.get_data() == {"message": "Hello World!"}


@pytest.mark.parametrize("encode", [to_http_binary, to_http_structured])
def test_sdk_parses_knray_messages(encode: Any) -> None:
    event = CloudEvent(expected_from_sdk(), {"message": "Hello World!"})
    headers, body = encode(event)
    parsed = sdk_http.from_http(sdk_http.HTTPMessage(headers=headers, body=body), JSONFormat())
    assert parsed.get_attributes() == sdk_event().get_attributes()
    assert parsed.get_data() == {"message": "Hello World!"}


def test_sdk_event_converts_both_ways_through_knray() -> None:
    original = sdk_event()
    [event] = from_http(*to_http_binary(CloudEvent.from_sdk(original)))
    back = event.to_sdk()
    assert back.get_attributes() == original.get_attributes()
    assert back.get_data() == original.get_data()

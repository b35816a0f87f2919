"""JSON event format: attribute types, data versus data_base64, version 0.3, errors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from knray.errors import InvalidEventError
from knray.events import CloudEvent, from_json, to_http_binary, to_json
from knray.events.http import from_http_binary
from knray.events.json_format import from_json_object, to_json_object


def attrs(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"specversion": "1.0", "id": "A1", "source": "/src", "type": "t"}
    base.update(extra)
    return base


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    "data", [{"a": [1, 2.5, None]}, ["x", 1], "I'm just a string", 42, True, 0]
)
@pytest.mark.parametrize("content_type", [None, "application/json", "application/vnd.x+json"])
def test_json_data_stays_a_json_value(data: Any, content_type: str | None) -> None:
    obj = attrs(data=data)
    if content_type:
        obj["datacontenttype"] = content_type
    event = from_json(encode(obj))
    assert event.get_data() == data
    assert type(event.get_data()) is type(data)
    assert json.loads(to_json(event))["data"] == data


def test_json_string_data_is_quoted_in_binary_mode() -> None:
    # json-format.md section 3.2, event D234: a JSON string becomes a quoted body.
    event = from_json(encode(attrs(datacontenttype="application/json", data="I'm just a string")))
    assert to_http_binary(event)[1] == b'"I\'m just a string"'


def test_text_data_is_a_string_member_and_a_raw_body() -> None:
    event = from_json(encode(attrs(datacontenttype="application/xml", data='<much wow="xml"/>')))
    assert event.get_data() == '<much wow="xml"/>'
    assert to_http_binary(event)[1] == b'<much wow="xml"/>'
    assert json.loads(to_json(event))["data"] == '<much wow="xml"/>'


def test_data_base64_becomes_bytes_and_back() -> None:
    payload = bytes(range(10))
    obj = attrs(datacontenttype="application/octet-stream")
    obj["data_base64"] = base64.b64encode(payload).decode()
    event = from_json(encode(obj))
    assert event.get_data() == payload
    assert to_http_binary(event)[1] == payload
    written = json.loads(to_json(event))
    assert "data" not in written
    assert base64.b64decode(written["data_base64"]) == payload


def test_bytes_data_is_written_as_data_base64_only() -> None:
    written = json.loads(to_json(CloudEvent(attrs(), b"\xff\x00")))
    assert written["data_base64"] == "/wA="
    assert "data" not in written


def test_json_body_that_does_not_parse_keeps_its_bytes() -> None:
    headers = {"ce-" + k: v for k, v in attrs().items()} | {"content-type": "application/json"}
    event = from_http_binary(headers, b"not json")
    restored = from_json(to_json(event))
    assert to_http_binary(restored)[1] == b"not json"


def test_data_and_data_base64_together_are_rejected() -> None:
    obj = attrs(data="x")
    obj["data_base64"] = "eA=="
    with pytest.raises(InvalidEventError) as caught:
        from_json(encode(obj))
    assert caught.value.attribute == "data_base64"


@pytest.mark.parametrize("value", ["not base64!", 12])
def test_bad_data_base64_is_rejected(value: Any) -> None:
    obj = attrs()
    obj["data_base64"] = value
    with pytest.raises(InvalidEventError) as caught:
        from_json(encode(obj))
    assert caught.value.attribute == "data_base64"


def test_null_attributes_are_unset() -> None:
    event = from_json(encode(attrs(subject=None, time=None, ext=None, data=None)))
    assert event.get_attributes() == attrs()
    assert event.get_data() is None


def test_extension_json_types_are_kept() -> None:
    event = from_json(encode(attrs(flag=False, count=-7, text="5")))
    assert event["flag"] is False
    assert event["count"] == -7
    assert event["text"] == "5"
    assert json.loads(to_json(event)) == attrs(flag=False, count=-7, text="5")


@pytest.mark.parametrize("value", [1.5, {"a": 1}, [1], 2**31])
def test_extension_values_outside_the_type_system_are_rejected(value: Any) -> None:
    with pytest.raises(InvalidEventError) as caught:
        from_json(encode(attrs(ext=value)))
    assert caught.value.attribute == "ext"


def test_time_string_is_not_rewritten() -> None:
    event = from_json(encode(attrs(time="2018-04-05t03:56:24.5+00:00")))
    assert event["time"] == "2018-04-05t03:56:24.5+00:00"
    assert json.loads(to_json(event))["time"] == "2018-04-05t03:56:24.5+00:00"


def test_datetime_and_bytes_attributes_are_written_as_strings() -> None:
    event = CloudEvent(attrs(time=datetime(2020, 1, 1, tzinfo=UTC), blob=b"\x01"))
    written = to_json_object(event)
    assert written["time"] == "2020-01-01T00:00:00Z"
    assert written["blob"] == "AQ=="


@pytest.mark.parametrize("missing", ["id", "source", "type", "specversion"])
def test_missing_required_attribute_is_named(missing: str) -> None:
    obj = attrs()
    del obj[missing]
    with pytest.raises(InvalidEventError) as caught:
        from_json(encode(obj))
    assert caught.value.attribute == missing


@pytest.mark.parametrize("name", ["MyExt", "my_ext", "data-x"])
def test_bad_attribute_names_are_rejected(name: str) -> None:
    obj = attrs()
    obj[name] = "v"
    with pytest.raises(InvalidEventError) as caught:
        from_json(encode(obj))
    assert caught.value.attribute == name


@pytest.mark.parametrize("body", [b"[]", b'"event"', b"null"])
def test_top_level_must_be_an_object(body: bytes) -> None:
    with pytest.raises(InvalidEventError, match="JSON object"):
        from_json(body)


def test_version_03_base64_data_decodes_and_round_trips() -> None:
    obj = attrs(specversion="0.3", datacontentencoding="base64", data="AAEC")
    event = from_json(encode(obj))
    assert event.get_data() == b"\x00\x01\x02"
    assert event["datacontentencoding"] == "base64"
    assert json.loads(to_json(event)) == obj


def test_version_03_bytes_are_written_with_datacontentencoding() -> None:
    written = to_json_object(CloudEvent(attrs(specversion="0.3"), b"\x00"))
    assert written["datacontentencoding"] == "base64"
    assert written["data"] == "AA=="
    assert "data_base64" not in written


def test_from_json_object_accepts_a_decoded_dict() -> None:
    event = from_json_object(attrs(data={"k": "v"}))
    assert event.get_data() == {"k": "v"}
    assert event.get_id() == "A1"

"""CloudEvents conformance data (github.com/cloudevents/conformance) against knray's bindings.

1. The Gherkin scenarios in ``features/*.feature`` (HTTP and Kafka bindings). They are parsed
   with pytest-bdd's Gherkin parser and run by the small step table below instead of
   ``pytest_bdd.scenarios()``: that would turn the feature's ``@http`` tag into a pytest marker,
   which ``--strict-markers`` rejects, and registering it needs a conftest.
2. The YAML events in ``yaml/``: sent as the upstream ``cloudevents invoke`` tool sends them and
   parsed by knray, then emitted by knray in every mode and parsed back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from pytest_bdd.parser import FeatureParser, Scenario, Step

from knray.events import (
    CloudEvent,
    KafkaRecord,
    from_http,
    from_kafka,
    is_json_content_type,
    to_http_binary,
    to_http_structured,
    to_kafka_binary,
    to_kafka_structured,
)
from tests.support.shared_data import require_shared_dir, shared_dir

NAME = "ce-conformance"
ROOT = shared_dir(NAME)
MISSING = pytest.param(None, id=f"{NAME}-missing")


# --- Gherkin scenarios ----------------------------------------------------------------------


@dataclass
class World:
    """What the steps of one scenario share."""

    http_request: str | None = None
    kafka_value: bytes | None = None
    kafka_headers: list[tuple[str, bytes]] = field(default_factory=list)
    event: CloudEvent | None = None


StepFunction = Callable[[World, Step], None]
STEPS: dict[str, StepFunction] = {}


def step(text: str) -> Callable[[StepFunction], StepFunction]:
    def register(function: StepFunction) -> StepFunction:
        STEPS[text] = function
        return function

    return register


def rows(current: Step) -> dict[str, str]:
    assert current.datatable is not None, f"step {current} needs a table"
    header, *body = current.datatable.raw()
    assert header == ["key", "value"], header
    return {str(key): str(value) for key, value in body}


@step("HTTP Protocol Binding is supported")
@step("Kafka Protocol Binding is supported")
def supported(world: World, current: Step) -> None:
    """knray implements both bindings; nothing to set up."""


@step("an HTTP request")
def http_request(world: World, current: Step) -> None:
    world.http_request = current.docstring


@step("parsed as HTTP request")
def parse_http_request(world: World, current: Step) -> None:
    assert world.http_request is not None
    head, _, body = world.http_request.partition("\n\n")
    _request_line, *header_lines = head.splitlines()
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    [world.event] = from_http(headers, body.encode())


@step("a Kafka message with payload:")
def kafka_payload(world: World, current: Step) -> None:
    assert current.docstring is not None
    world.kafka_value = current.docstring.encode()


@step("Kafka headers:")
def kafka_headers(world: World, current: Step) -> None:
    world.kafka_headers = [(key, value.encode()) for key, value in rows(current).items()]


@step("parsed as Kafka message")
def parse_kafka_message(world: World, current: Step) -> None:
    record = KafkaRecord(key=None, value=world.kafka_value, headers=tuple(world.kafka_headers))
    world.event = from_kafka(record)


@step("the attributes are:")
def attributes_are(world: World, current: Step) -> None:
    assert world.event is not None
    # Exactly these: nothing added (no generated id or time), nothing rewritten.
    assert world.event.get_attributes() == rows(current)


@step("the data is equal to the following JSON:")
def data_is_json(world: World, current: Step) -> None:
    assert world.event is not None
    assert current.docstring is not None
    assert world.event.get_data() == json.loads(current.docstring)


def scenario_cases() -> list[Any]:
    if ROOT is None:
        return [MISSING]
    cases = []
    for path in sorted((ROOT / "features").glob("*.feature")):
        feature = FeatureParser(str(path.parent), path.name).parse()
        for template in feature.scenarios.values():
            contexts = [ctx for examples in template.examples for ctx in examples.as_contexts()]
            for context in contexts or [{}]:
                scenario = template.render(context)
                cases.append(pytest.param(scenario, id=f"{path.stem}: {scenario.name}"))
    return cases


@pytest.mark.parametrize("scenario", scenario_cases())
def test_feature_scenario(scenario: Scenario | None) -> None:
    require_shared_dir(NAME)
    assert scenario is not None
    world = World()
    for current in scenario.steps:
        function = STEPS.get(current.name)
        if function is None:
            pytest.fail(f"no step definition for {current.keyword} {current.name!r}")
        function(world, current)


def test_both_binding_features_are_found() -> None:
    root = require_shared_dir(NAME)
    stems = {path.stem for path in (root / "features").glob("*.feature")}
    assert stems >= {"http-protocol-binding", "kafka-protocol-binding"}
    ids = [case.id for case in scenario_cases()]
    assert any(name.startswith("http-protocol-binding: ") for name in ids)
    assert any(name.startswith("kafka-protocol-binding: ") for name in ids)


# --- YAML events ----------------------------------------------------------------------------


@dataclass(frozen=True)
class YamlEvent:
    """One event of the upstream YAML format (pkg/event/event.go), all values strings."""

    mode: str
    attributes: dict[str, str]
    transport: dict[str, str]
    body: bytes

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> YamlEvent:
        context = dict(doc.get("ContextAttributes") or {})
        extensions = context.pop("Extensions", None) or {}
        attributes = {name: value for name, value in context.items() if value != ""}
        attributes.update(extensions)
        return cls(
            mode=doc.get("Mode") or "binary",
            attributes=attributes,
            transport=dict(doc.get("TransportExtensions") or {}),
            body=(doc.get("Data") or "").encode(),
        )

    @property
    def is_json(self) -> bool:
        return is_json_content_type(self.attributes.get("datacontenttype"))

    @property
    def data(self) -> Any:
        """The data as a reader sees it: a JSON value or text."""
        if not self.body:
            return None
        text = self.body.decode()
        return json.loads(text) if self.is_json else text

    def upstream_request(self) -> tuple[dict[str, str], bytes]:
        """The HTTP request the upstream ``cloudevents invoke`` sends for this event."""
        headers = dict(self.transport)
        if self.mode == "structured":
            envelope: dict[str, Any] = dict(self.attributes)
            if self.body:
                envelope["data"] = self.data
            headers["Content-Type"] = "application/cloudevents+json; charset=UTF-8"
            return headers, json.dumps(envelope).encode()
        safe = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
        for name, value in self.attributes.items():
            if name == "datacontenttype":
                headers["Content-Type"] = value
            else:
                headers[f"ce-{name}"] = quote(value, safe=safe)
        return headers, self.body


def yaml_documents(root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((root / "yaml").rglob("*.yaml")):
        # BaseLoader keeps every scalar a string, as the Go tool reads them (1.0 stays "1.0").
        documents = yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
        for index, doc in enumerate(documents):
            if doc:
                yield f"{path.relative_to(root / 'yaml')}#{index}", doc


def yaml_cases() -> list[Any]:
    if ROOT is None:
        return [MISSING]
    return [pytest.param(YamlEvent.parse(doc), id=name) for name, doc in yaml_documents(ROOT)]


@pytest.mark.parametrize("yaml_event", yaml_cases())
def test_yaml_event_sent_by_upstream_tool_parses(yaml_event: YamlEvent | None) -> None:
    require_shared_dir(NAME)
    assert yaml_event is not None
    [event] = from_http(*yaml_event.upstream_request())
    assert event.get_attributes() == yaml_event.attributes
    assert event.get_data() == yaml_event.data
    if yaml_event.mode == "binary":
        assert event.encoded_data() == yaml_event.body


def kafka_round_trip(encode: Callable[[CloudEvent], KafkaRecord]) -> Callable[..., CloudEvent]:
    return lambda event: from_kafka(encode(event))


def http_round_trip(
    encode: Callable[[CloudEvent], tuple[dict[str, str], bytes]],
) -> Callable[..., CloudEvent]:
    def round_trip(event: CloudEvent) -> CloudEvent:
        [parsed] = from_http(*encode(event))
        return parsed

    return round_trip


ROUND_TRIPS = {
    "http-binary": http_round_trip(to_http_binary),
    "http-structured": http_round_trip(to_http_structured),
    "kafka-binary": kafka_round_trip(to_kafka_binary),
    "kafka-structured": kafka_round_trip(to_kafka_structured),
}


@pytest.mark.parametrize("mode", sorted(ROUND_TRIPS))
@pytest.mark.parametrize("yaml_event", yaml_cases())
def test_yaml_event_round_trips(yaml_event: YamlEvent | None, mode: str) -> None:
    require_shared_dir(NAME)
    assert yaml_event is not None
    received = CloudEvent.from_encoded(yaml_event.attributes, yaml_event.body)
    parsed = ROUND_TRIPS[mode](received)
    assert parsed.get_attributes() == yaml_event.attributes
    assert parsed.get_data() == yaml_event.data
    if mode.endswith("binary"):
        assert parsed.encoded_data() == yaml_event.body

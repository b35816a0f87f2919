"""The CloudEvents SQL TCK (cloudevents/spec cesql/cesql_tck), one pytest case per TCK case.

Stricter than the reference harness (sdk-go sql/v2/test/tck_test.go): for an erroring case
it checks the error kind *and* the zero value in ``result`` (cesql/spec.md section 3.3).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from knray import CloudEvent
from knray.cesql import compile, evaluate, parse
from knray.errors import CESQLParseError
from tests.support.shared_data import require_shared_dir, shared_dir

EXPECTED_CASES = 275


class _TimestampsAsStrings(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: `time: 2018-04-26T14:48:09+02:00` stays text."""


_TimestampsAsStrings.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_cases() -> list[Any]:
    folder = shared_dir("cesql-tck")
    if folder is None:
        return [pytest.param(None, id="cesql-tck-missing")]
    params = []
    for path in sorted(Path(folder).glob("*.yaml")):
        suite = yaml.load(path.read_text(encoding="utf-8"), Loader=_TimestampsAsStrings)
        for case in suite["tests"]:
            params.append(pytest.param(case, id=f"{path.stem}::{case['name']}"))
    if len(params) < EXPECTED_CASES:
        raise RuntimeError(
            f"found only {len(params)} CESQL TCK cases in {folder}, expected {EXPECTED_CASES}"
        )
    return params


def full_event() -> dict[str, Any]:
    """sdk-go's ``test.FullEvent()`` (v2/test/event_mocks.go) as knray attributes."""
    return {
        "specversion": "1.0",
        "type": "com.example.FullEvent",
        "source": "http://example.com/source",
        "id": "full-event",
        "time": datetime(2020, 3, 21, 12, 34, 56, 780000, tzinfo=UTC),
        "dataschema": "http://example.com/schema",
        "subject": "topic",
        "datacontenttype": "text/json",
        "exbool": True,
        "exint": 42,
        "exstring": "exstring",
        "exbinary": bytes([0, 1, 2, 3]),
        "exurl": "http://example.com/source",
        "extime": datetime(2020, 3, 21, 12, 34, 56, 780000, tzinfo=UTC),
    }


def _event(case: dict[str, Any]) -> CloudEvent:
    attributes = dict(case["event"]) if "event" in case else full_event()
    attributes["specversion"] = "1.0"  # the reference harness forces v1
    attributes.update(case.get("eventOverrides") or {})
    data = attributes.pop("data", "hello" if "event" not in case else None)
    return CloudEvent(attributes, data)


def _same(actual: object, expected: object) -> bool:
    # bool is an int in Python: compare types too, so 1 never passes for true.
    return type(actual) is type(expected) and actual == expected


@pytest.mark.parametrize("case", _load_cases())
def test_tck_case(case: dict[str, Any] | None) -> None:
    if case is None:
        require_shared_dir("cesql-tck")
        return
    expression = case["expression"]
    if not isinstance(expression, str):  # `expression: 0` is a YAML integer
        expression = str(expression).upper() if isinstance(expression, bool) else str(expression)
    expected_error = case.get("error")

    if expected_error == "parse":
        with pytest.raises(CESQLParseError):
            parse(expression)
        return

    event = _event(case)
    value, error = evaluate(expression, event)
    compiled_value, compiled_error = compile(expression).evaluate(event)
    assert _same(compiled_value, value)
    assert type(compiled_error) is type(error)

    if expected_error is not None:
        assert error is not None, f"expected a {expected_error} error, got value {value!r}"
        assert error.kind == expected_error, f"{error.kind}: {error}"
    else:
        assert error is None, f"unexpected {error.kind} error: {error}"
    if "result" in case:
        assert _same(value, case["result"]), f"got {value!r}, expected {case['result']!r}"

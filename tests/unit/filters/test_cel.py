"""CEL filter semantics (Dapr's CEL routing variables), run identically on every backend.

A case that a backend gets wrong is marked xfail(strict=True) for that backend only, with the
reason; the default backend must have none.
"""

from __future__ import annotations

import json
import pickle
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple

import pytest

from knray.cel import BACKEND_ENV_VAR, BACKENDS, DEFAULT_BACKEND
from knray.errors import CELCompileError
from knray.events import CloudEvent
from knray.filters import CELFilter
from knray.filters.base import Filter

BENCH_EXPRESSION = 'event.type == "chat.message" && event.data.toxicity > 0.8'

_BASE = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "/chat/rooms/general",
    "type": "chat.message",
}
_CHAT_DATA = {
    "toxicity": 0.93,
    "tokens": 57,
    "moderated": True,
    "text": "Hello there",
    "user": {"name": "alice", "roles": ["admin", "member"]},
    "scores": {"spam": 0.01},
}
_CHAT_ATTRIBUTES = {
    **_BASE,
    "datacontenttype": "application/json",
    "subject": "room/general",
    "time": "2024-05-01T12:34:56Z",
    "tenant": "acme",
    "flagged": True,
    "priority": 7,
    "blob": b"\x00\x01",
}

CHAT = CloudEvent(_CHAT_ATTRIBUTES, _CHAT_DATA)
CHAT_FROM_WIRE = CloudEvent.from_encoded(_CHAT_ATTRIBUTES, json.dumps(_CHAT_DATA).encode())
CALM_CHAT = CloudEvent(_CHAT_ATTRIBUTES, {**_CHAT_DATA, "toxicity": 0.1})
TEXT = CloudEvent({**_BASE, "datacontenttype": "text/plain"}, "hello world")
TEXT_FROM_WIRE = CloudEvent.from_encoded({**_BASE, "datacontenttype": "text/plain"}, b"hello world")
BINARY = CloudEvent.from_encoded(
    {**_BASE, "datacontenttype": "application/octet-stream"}, b"\xff\x00"
)
LIST_DATA = CloudEvent({**_BASE, "datacontenttype": "application/json"}, [1, 2, 3])
NO_DATA = CloudEvent(_BASE)
NUL_IN_JSON = CloudEvent.from_encoded(
    {**_BASE, "datacontenttype": "application/json"}, b'{"text": "a\\u0000b", "n": 1}'
)
NUL_IN_TEXT = CloudEvent({**_BASE, "datacontenttype": "text/plain"}, "a\x00b")
DATETIME_TIME = CloudEvent({**_BASE, "time": datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)})

_CELPY = ("cel-python", "cel-python-interpreted")
_UNCHECKED = ("common-expression-language", *_CELPY)
# (case id, backend) -> why that backend differs from cel-go (Dapr) on the case.
DEVIATIONS: dict[tuple[str, str], str] = {
    **{
        (case, backend): "celpy 0.5 has no cross-type numeric comparison (int vs double)"
        for case in ("int-gt-double", "int-eq-double")
        for backend in _CELPY
    },
    ("attribute-absent-negated", "cel-python"): (
        "celpy 0.5 compiled runner: has() yields a Python bool that '!' rejects"
    ),
    **{
        ("static-type-error", backend): "no type checker: a static type error fails at evaluation"
        for backend in _UNCHECKED
    },
}


class Case(NamedTuple):
    id: str
    expression: str
    event: CloudEvent
    expected: bool


def _params(cases: list[Case]) -> list[Any]:
    params = []
    for backend in BACKENDS:
        for case in cases:
            reason = DEVIATIONS.get((case.id, backend))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(
                pytest.param(
                    backend,
                    case.expression,
                    case.event,
                    case.expected,
                    marks=marks,
                    id=f"{backend}:{case.id}",
                )
            )
    return params


ATTRIBUTES = [
    Case("type", 'event.type == "chat.message"', CHAT, True),
    Case("type-differs", 'event.type == "chat.deleted"', CHAT, False),
    Case("source", 'event.source == "/chat/rooms/general"', CHAT, True),
    Case("id-specversion", 'event.id == "evt-1" && event.specversion == "1.0"', CHAT, True),
    Case("subject", 'event.subject == "room/general"', CHAT, True),
    Case("datacontenttype", 'event.datacontenttype == "application/json"', CHAT, True),
    Case("ext-string", 'event.tenant == "acme"', CHAT, True),
    Case("ext-bool", "event.flagged", CHAT, True),
    Case("ext-bool-eq", "event.flagged == true", CHAT, True),
    Case("ext-bool-not", "!event.flagged", CHAT, False),
    Case("ext-int-eq", "event.priority == 7", CHAT, True),
    Case("ext-int-range", "event.priority > 5 && event.priority < 10", CHAT, True),
    Case("ext-int-differs", "event.priority == 8", CHAT, False),
    Case("ext-binary-is-base64", 'event.blob == "AAE="', CHAT, True),
]

DATA = [
    Case("bench", BENCH_EXPRESSION, CHAT, True),
    Case("bench-from-wire", BENCH_EXPRESSION, CHAT_FROM_WIRE, True),
    Case("bench-low-toxicity", BENCH_EXPRESSION, CALM_CHAT, False),
    Case("double-gt", "event.data.toxicity > 0.8", CHAT, True),
    Case("double-lt", "event.data.toxicity < 0.5", CHAT, False),
    Case("int-eq", "event.data.tokens == 57", CHAT, True),
    Case("int-ge", "event.data.tokens >= 50", CHAT_FROM_WIRE, True),
    Case("int-gt-double", "event.data.tokens > 10.5", CHAT, True),
    Case("double-gt-int", "event.data.toxicity > 0", CHAT, True),
    Case("int-eq-double", "event.data.tokens == 57.0", CHAT, True),
    Case("bool-field", "event.data.moderated", CHAT, True),
    Case("nested-string", 'event.data.user.name == "alice"', CHAT, True),
    Case("nested-double", "event.data.scores.spam < 0.1", CHAT_FROM_WIRE, True),
    Case("list-in", '"admin" in event.data.user.roles', CHAT, True),
    Case("list-index", 'event.data.user.roles[1] == "member"', CHAT, True),
    Case("list-size", "size(event.data.user.roles) == 2", CHAT, True),
    Case("list-exists", 'event.data.user.roles.exists(r, r.startsWith("ad"))', CHAT, True),
    Case("list-all", "event.data.user.roles.all(r, size(r) > 5)", CHAT, False),
    Case("json-array", "size(event.data) == 3 && event.data[0] == 1", LIST_DATA, True),
    Case("text-equals", 'event.data == "hello world"', TEXT, True),
    Case("text-from-wire", 'event.data == "hello world"', TEXT_FROM_WIRE, True),
    Case("text-function", 'event.data.startsWith("hello")', TEXT_FROM_WIRE, True),
    Case("text-has-no-fields", "event.data.toxicity > 0.8", TEXT, False),
    Case("binary-is-bytes", 'event.data == b"\\xff\\x00"', BINARY, True),
    Case("binary-size", "size(event.data) == 2", BINARY, True),
    Case(
        "nul-in-json-string",
        'size(event.data.text) == 3 && event.data.text != "a"',
        NUL_IN_JSON,
        True,
    ),
    Case("nul-in-text", "size(event.data) == 3", NUL_IN_TEXT, True),
]

MISSING = [
    Case("attribute-eq", 'event.nope == "x"', CHAT, False),
    Case("attribute-ne", 'event.nope != "x"', CHAT, False),
    Case("data-field", "event.data.nope > 1", CHAT, False),
    Case("nested-field", 'event.data.user.nope == "x"', CHAT, False),
    Case("list-out-of-range", 'event.data.user.roles[5] == "x"', CHAT, False),
    Case("no-data", "event.data.toxicity > 0.8", NO_DATA, False),
    Case("no-data-whole", 'event.data == ""', NO_DATA, False),
    Case("or-absorbs-error", 'event.nope == "x" || event.type == "chat.message"', CHAT, True),
    Case("or-absorbs-error-right", 'event.type == "chat.message" || event.nope == "x"', CHAT, True),
    Case("and-with-error", 'event.nope == "x" && event.type == "chat.message"', CHAT, False),
    Case("and-false-absorbs-error", 'event.nope == "x" && false', CHAT, False),
    Case("type-mismatch", "event.type > 1", CHAT, False),
    Case("type-mismatch-arith", "event.data.text + 1 == 2", CHAT, False),
    Case("division-by-zero", "event.data.tokens / 0 == 1", CHAT, False),
]

HAS = [
    Case("attribute", "has(event.tenant)", CHAT, True),
    Case("attribute-absent", "has(event.nope)", CHAT, False),
    Case("attribute-absent-negated", "!has(event.nope)", CHAT, True),
    Case("data", "has(event.data)", CHAT, True),
    Case("data-text", "has(event.data)", TEXT, True),
    Case("data-absent", "has(event.data)", NO_DATA, False),
    Case("data-field", "has(event.data.user)", CHAT, True),
    Case("nested", "has(event.data.user.name)", CHAT_FROM_WIRE, True),
    Case("nested-absent", "has(event.data.user.email)", CHAT, False),
    Case("guard", 'has(event.subject) && event.subject.endsWith("general")', CHAT, True),
    Case("guard-absent", 'has(event.subject) && event.subject.endsWith("general")', TEXT, False),
]

STRINGS = [
    Case("startsWith", 'event.type.startsWith("chat.")', CHAT, True),
    Case("endsWith", 'event.type.endsWith(".message")', CHAT, True),
    Case("contains", 'event.source.contains("rooms")', CHAT, True),
    Case("contains-not", 'event.source.contains("lobby")', CHAT, False),
    Case("matches", 'event.type.matches("^chat\\\\.(message|edit)$")', CHAT, True),
    Case("matches-not", 'event.type.matches("^edit")', CHAT, False),
    Case("matches-flags", 'event.data.text.matches("(?i)^hello")', CHAT, True),
    Case("size", "size(event.type) == 12", CHAT, True),
]

NON_BOOLEAN = [
    Case("string", "event.type", CHAT, False),
    Case("double", "event.data.toxicity", CHAT, False),
    Case("int", "event.priority", CHAT, False),
    Case("map", "event.data", CHAT, False),
    Case("string-true", '"true"', CHAT, False),
    Case("arithmetic", "1 + 1", CHAT, False),
]

WHOLE_EVENT = [
    Case("size", "size(event) > 5", CHAT, True),
    Case("in", '"tenant" in event', CHAT, True),
    Case("in-absent", '"nope" in event', CHAT, False),
    Case("index", 'event["type"] == "chat.message"', CHAT, True),
    Case("exists", 'event.exists(k, k == "priority")', CHAT, True),
    Case("data-key", '"data" in event', NO_DATA, False),
]

TIME = [
    Case("string", 'event.time == "2024-05-01T12:34:56Z"', CHAT, True),
    Case("timestamp", 'timestamp(event.time) > timestamp("2024-01-01T00:00:00Z")', CHAT, True),
    Case("timestamp-part", "timestamp(event.time).getFullYear() == 2024", CHAT, True),
    Case("not-a-timestamp", 'event.time > timestamp("2024-01-01T00:00:00Z")', CHAT, False),
    Case("datetime-as-rfc3339", 'event.time == "2024-05-01T12:34:56Z"', DATETIME_TIME, True),
    Case(
        "datetime-timestamp",
        'timestamp(event.time) < timestamp("2025-01-01T00:00:00Z")',
        DATETIME_TIME,
        True,
    ),
    Case("absent", 'event.time == "2024-05-01T12:34:56Z"', TEXT, False),
]


@pytest.mark.parametrize(("backend", "expression", "event", "expected"), _params(ATTRIBUTES))
def test_attributes_and_extensions(
    backend: str, expression: str, event: CloudEvent, expected: bool
) -> None:
    assert CELFilter(expression, backend).match(event) is expected


@pytest.mark.parametrize(("backend", "expression", "event", "expected"), _params(DATA))
def test_data(backend: str, expression: str, event: CloudEvent, expected: bool) -> None:
    assert CELFilter(expression, backend).match(event) is expected


@pytest.mark.parametrize(("backend", "expression", "event", "expected"), _params(MISSING))
def test_errors_mean_no_match(
    backend: str, expression: str, event: CloudEvent, expected: bool
) -> None:
    assert CELFilter(expression, backend).match(event) is expected


@pytest.mark.parametrize(("backend", "expression", "event", "expected"), _params(HAS))
def test_has_macro(backend: str, expression: str, event: CloudEvent, expected: bool) -> None:
    assert CELFilter(expression, backend).match(event) is expected


@pytest.mark.parametrize(("backend", "expression", "event", "expected"), _params(STRINGS))
def test_string_functions(backend: str, expression: str, event: CloudEvent, expected: bool) -> None:
    assert CELFilter(expression, backend).match(event) is expected


@pytest.mark.parametrize(("backend", "expression", "event", "expected"), _params(NON_BOOLEAN))
def test_non_boolean_result_is_no_match(
    backend: str, expression: str, event: CloudEvent, expected: bool
) -> None:
    assert CELFilter(expression, backend).match(event) is expected


@pytest.mark.parametrize(("backend", "expression", "event", "expected"), _params(WHOLE_EVENT))
def test_event_as_a_map(backend: str, expression: str, event: CloudEvent, expected: bool) -> None:
    assert CELFilter(expression, backend).match(event) is expected


@pytest.mark.parametrize(("backend", "expression", "event", "expected"), _params(TIME))
def test_time_is_an_rfc3339_string(
    backend: str, expression: str, event: CloudEvent, expected: bool
) -> None:
    assert CELFilter(expression, backend).match(event) is expected


COMPILE_ERRORS = [
    ("dangling-operator", "event.type =="),
    ("dangling-and", 'event.type == "a" &&'),
    ("unbalanced", '(event.type == "a"'),
    ("unterminated-string", 'event.type == "chat'),
    ("empty", ""),
    ("blank", "   "),
    ("undeclared-variable", 'evnt.type == "chat.message"'),
    ("undeclared-bare", "flagged"),
    ("unknown-function", "frobnicate(event.type)"),
    ("unknown-method", "event.type.frobnicate()"),
    ("static-type-error", '1 + "a" == 2'),
]


@pytest.mark.parametrize(
    ("backend", "expression"),
    [
        pytest.param(
            backend,
            expression,
            id=f"{backend}:{case}",
            marks=[pytest.mark.xfail(strict=True, reason=DEVIATIONS[case, backend])]
            if (case, backend) in DEVIATIONS
            else [],
        )
        for backend in BACKENDS
        for case, expression in COMPILE_ERRORS
    ],
)
def test_compile_errors(backend: str, expression: str) -> None:
    with pytest.raises(CELCompileError) as raised:
        CELFilter(expression, backend)
    assert isinstance(raised.value, ValueError)
    assert str(raised.value).strip()


@pytest.mark.parametrize("backend", BACKENDS)
def test_compile_error_carries_the_backend_message(backend: str) -> None:
    with pytest.raises(CELCompileError, match="undeclared reference to 'evnt"):
        CELFilter('evnt.type == "chat.message"', backend)


class _CountingEvent(CloudEvent):
    decoded: ClassVar[list[str]] = []

    def get_data(self) -> Any:
        _CountingEvent.decoded.append(self.get_id())
        return super().get_data()


@pytest.mark.parametrize("backend", BACKENDS)
def test_data_is_decoded_only_when_the_expression_reads_it(backend: str) -> None:
    event = _CountingEvent.from_encoded(_CHAT_ATTRIBUTES, json.dumps(_CHAT_DATA).encode())
    _CountingEvent.decoded.clear()
    assert CELFilter('event.type == "chat.message"', backend).match(event)
    assert CELFilter("has(event.tenant)", backend).match(event)
    assert _CountingEvent.decoded == []
    assert CELFilter("event.data.tokens == 57", backend).match(event)
    assert _CountingEvent.decoded != []


def _run_in_threads(work: Callable[[int], list[str]], threads: int) -> list[str]:
    failures: list[str] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        found = work(index)
        with lock:
            failures.extend(found)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often so that shared state would show
    try:
        workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)
    return failures


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_compiled_filter_is_safe_across_threads(backend: str) -> None:
    shared = CELFilter(BENCH_EXPRESSION, backend)
    events = [(CHAT, True), (CALM_CHAT, False), (NO_DATA, False), (CHAT_FROM_WIRE, True)]
    rounds = 15 if backend == "cel-python-interpreted" else 150

    def work(index: int) -> list[str]:
        failures = []
        for step in range(rounds):
            event, expected = events[(index + step) % len(events)]
            if shared.match(event) is not expected:
                failures.append(f"thread {index} step {step}: expected {expected}")
        return failures

    assert _run_in_threads(work, threads=8) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_filter_is_reusable_after_errors(backend: str) -> None:
    shared = CELFilter(BENCH_EXPRESSION, backend)
    sequence = [CHAT, NO_DATA, TEXT, CALM_CHAT, CHAT_FROM_WIRE] * 3
    assert [shared.match(event) for event in sequence] == [True, False, False, False, True] * 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_filter_exposes_expression_and_backend(backend: str) -> None:
    cel_filter = CELFilter(BENCH_EXPRESSION, backend)
    assert cel_filter.expression == BENCH_EXPRESSION
    assert cel_filter.backend == backend
    assert isinstance(cel_filter, Filter)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_filter_survives_pickling(backend: str) -> None:
    copy = pickle.loads(pickle.dumps(CELFilter(BENCH_EXPRESSION, backend)))
    assert (copy.expression, copy.backend) == (BENCH_EXPRESSION, backend)
    assert copy.match(CHAT) is True
    assert copy.match(CALM_CHAT) is False


def test_backend_from_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV_VAR, "common-expression-language")
    assert CELFilter(BENCH_EXPRESSION).backend == "common-expression-language"


def test_argument_overrides_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV_VAR, "common-expression-language")
    assert CELFilter(BENCH_EXPRESSION, "cel-python").backend == "cel-python"


def test_default_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)
    assert CELFilter(BENCH_EXPRESSION).backend == DEFAULT_BACKEND


def test_default_backend_passes_every_case() -> None:
    assert [key for key in DEVIATIONS if key[1] == DEFAULT_BACKEND] == []


def test_unknown_backend_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown CEL backend 'cel-go'") as raised:
        CELFilter(BENCH_EXPRESSION, "cel-go")
    assert not isinstance(raised.value, CELCompileError)
    for name in BACKENDS:
        assert name in str(raised.value)


def test_unknown_backend_in_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV_VAR, "nope")
    with pytest.raises(ValueError, match=BACKEND_ENV_VAR):
        CELFilter(BENCH_EXPRESSION)

"""The in-memory kit: real dispatcher, filters and replica, handlers called in-process."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from knray import CloudEvent
from knray.broker import DeliveryStatus
from knray.errors import ManifestError
from knray.manifests.builders import broker, delivery, service, trigger
from knray.serving import batch_handler
from knray.testing import InMemoryBroker, RecordingSink, make_event

HERE = __name__
_batches: list[list[str]] = []


@batch_handler(max_batch_size=4, batch_wait_timeout_s=0.05)
def classify(events: list[CloudEvent]) -> list[object]:
    _batches.append([e.get_id() for e in events])
    results: list[object] = []
    for event in events:
        data: Any = event.get_data()
        if data.get("text") == "boom":
            results.append(ValueError("cannot classify"))
        else:
            results.append(make_event("chat.classified", {"label": "ok"}, id=f"{event.get_id()}-c"))
    return results


def count_words(event: CloudEvent) -> None:
    return None


def _resources(dead_letter: str = "dead") -> list[Any]:
    return [
        broker(
            "chat",
            delivery=delivery(
                retry=2, backoff_policy="linear", backoff_delay_s=0.5, dead_letter_sink=dead_letter
            ),
        ),
        service("classifier", handler=f"{HERE}:classify", container_concurrency=8),
        service("words", handler=count_words),
        service("dead", image="gcr.io/knative-releases/knative.dev/eventing/cmd/event_display"),
        trigger("classify", broker="chat", subscriber="classifier", exact={"type": "chat.message"}),
        trigger(
            "public-words",
            broker="chat",
            subscriber="words",
            cesql="type = 'chat.classified' OR subject LIKE 'room/public-%'",
        ),
        trigger(
            "loud",
            broker="chat",
            subscriber="https://example.invalid/loud",
            cel='event.type == "chat.message" && event.data.text.endsWith("!")',
        ),
    ]


def test_one_failing_event_of_a_batch_is_retried_and_dead_lettered_alone() -> None:
    _batches.clear()
    kit = InMemoryBroker(_resources())
    events = [
        make_event("chat.message", {"text": "boom" if i == 2 else f"hi {i}"}, id=f"m{i}")
        for i in range(6)
    ]
    outcomes = kit.send(events)
    statuses = [o.status for o in outcomes]
    assert statuses[2] is DeliveryStatus.DEAD_LETTERED
    assert statuses[:2] + statuses[3:] == [DeliveryStatus.DELIVERED] * 5
    # Batches of at most max_batch_size; the retries carry the failed event alone.
    assert all(len(batch) <= 4 for batch in _batches)
    assert sorted(i for batch in _batches for i in batch) == sorted(
        [f"m{i}" for i in range(6)] + ["m2", "m2"]
    )
    assert _batches[-2:] == [["m2"], ["m2"]]
    assert kit.retry_delays_s == [0.5, 1.0]  # linear backoff of PT0.5S, recorded not slept
    (letter,) = kit.service("dead").received
    assert letter.get_id() == "m2"
    assert letter["knativeerrordest"] == "memory://default/classifier"
    assert letter["knativeerrorcode"] == 500
    counters = kit.stats()["routes"]["Trigger/default/classify"]
    assert counters["delivered"] == 5
    assert counters["dead_lettered"] == 1
    assert counters["retries"] == 2


def test_replies_feed_the_second_trigger_and_filters_route() -> None:
    kit = InMemoryBroker(_resources())
    kit.send(
        [
            make_event("chat.message", {"text": "hey!"}, id="a", subject="room/private-1"),
            make_event("chat.gift", {"amount": 5}, id="b", subject="room/public-2"),
        ]
    )
    words = [e.get_id() for e in kit.service("words").received]
    assert sorted(words) == ["a-c", "b"]  # the reply of "a", and the public gift
    sink = kit.sink("https://example.invalid/loud")
    assert isinstance(sink, RecordingSink)
    assert [e.get_id() for e in sink.received] == ["a"]
    assert [e.get_id() for e in kit.service("classifier").replies] == ["a-c"]
    rows = kit.deliveries("public-words")
    assert {row["id"] for row in rows} == {"a-c", "b"}
    assert all(row["status"] == "delivered" for row in rows)


def test_handlers_can_be_replaced_and_failing_sinks_fail_the_event() -> None:
    def always_fails(event: CloudEvent) -> None:
        raise RuntimeError("down")

    kit = InMemoryBroker(
        _resources(dead_letter="https://example.invalid/dls"),
        handlers={"classifier": always_fails},
        sinks={"https://example.invalid/dls": RecordingSink(code=503)},
    )
    [outcome] = kit.send(make_event("chat.message", {"text": "x"}))
    assert outcome.status is DeliveryStatus.FAILED
    assert outcome.error is not None
    assert "RuntimeError: down" in outcome.error
    assert len(kit.service("classifier").failed) == 3  # first attempt and two retries


async def test_async_tests_await_deliver() -> None:
    kit = InMemoryBroker(_resources())
    [outcome] = await kit.deliver(make_event("other.type"))
    assert outcome.status is DeliveryStatus.FILTERED
    # The sync call works here too (on a helper thread), e.g. in a notebook.
    [outcome] = kit.send(make_event("chat.message", {"text": "hi"}))
    assert outcome.status is DeliveryStatus.DELIVERED


def test_yaml_and_bad_references_are_checked() -> None:
    yaml = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: chat}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t}
spec:
  broker: chat
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: missing}}
"""
    with pytest.raises(ManifestError, match=r"spec.subscriber.ref: Service default/missing"):
        InMemoryBroker(yaml)
    with pytest.raises(ValueError, match="not defined"):
        InMemoryBroker(_resources(), handlers={"nope": count_words})


def test_make_event_defaults() -> None:
    first = make_event("t", {"a": 1}, room="r1")
    second = make_event("t")
    assert first.get_id() != second.get_id()
    assert first["datacontenttype"] == "application/json"
    assert first["room"] == "r1"
    assert first.get_source() == "/knray/testing"


def test_importing_the_kit_starts_and_imports_nothing_heavy() -> None:
    code = (
        "import sys, knray.testing; "
        "print(sorted(m for m in ('ray', 'aiokafka') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"

"""knray.local() on a real Ray: apply, send, observe, delete, close."""

from __future__ import annotations

import time
from typing import Any

import pytest
import ray

import knray
from knray.manifests.builders import service, trigger
from knray.testing import make_event

pytestmark = pytest.mark.integration

NS = "interactive"
BROKER = f"""
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: chat, namespace: {NS}}}
spec:
  delivery:
    retry: 1
    deadLetterSink:
      ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: dead-letters}}
"""


def test_a_session_applies_sends_observes_and_deletes(ray_local: None) -> None:
    resources: list[Any] = [
        service(
            "scoring",
            namespace=NS,
            handler="examples.livechat.scoring:score_messages",
            min_scale=1,
        ),
        service("alerts", namespace=NS, handler="examples.livechat.handlers:RoomSentiment"),
        service("dead-letters", namespace=NS, image="event-display", min_scale=1),
        trigger(
            "score",
            namespace=NS,
            broker="chat",
            subscriber="scoring",
            exact={"type": "chat.message"},
        ),
        trigger(
            "alert-toxic",
            namespace=NS,
            broker="chat",
            subscriber="alerts",
            cel='event.type == "chat.scored" && event.data.toxicity > 0.8',
        ),
    ]
    with knray.local(sample_interval_s=0.5) as kn:  # attaches to the tests' Ray
        applied = kn.apply(BROKER, resources)
        assert {(row["kind"], row["name"]) for row in applied} >= {
            ("Broker", "chat"),
            ("Trigger", "alert-toxic"),
        }
        toxic = kn.send(make_event("chat.message", {"text": "you stupid idiot"}, id="t1"))
        assert toxic.status == "delivered"
        bad = kn.send(make_event("chat.message", {"user": "no text"}, id="b1"))
        assert bad.status == "dead_lettered"
        assert bad.error is not None
        assert "has no text" in bad.error
        stream = [make_event("chat.message", {"text": f"hi {i}"}, id=f"s{i}") for i in range(20)]
        outcomes = kn.send_many(stream, rate_per_s=40, batch_size=5)
        assert [o.status for o in outcomes] == ["delivered"] * 20

        rows = kn.events("score", limit=100)
        statuses = {row["id"]: row["status"] for row in rows}
        assert statuses["b1"] == "dead_lettered"
        assert statuses["t1"] == "delivered"
        assert {f"s{i}" for i in range(20)} <= set(statuses)
        assert [row["id"] for row in kn.events("alert-toxic")] == ["t1-scored"]
        counters = {row["trigger"]: row for row in kn.stats()}
        assert counters["score"]["delivered"] == 21
        assert counters["score"]["dead_lettered"] == 1
        assert counters["score"]["retries"] == 1
        assert {row["service"] for row in kn.services()} == {"scoring", "alerts", "dead-letters"}

        deadline = time.monotonic() + 30
        while not any(r["metric"] == "replicas" for r in kn.history()):
            assert time.monotonic() < deadline, "no history sample within 30 s"
            time.sleep(0.5)

        remaining = kn.delete("alert-toxic", "alerts")
        assert ("Trigger", "alert-toxic") not in {(r["kind"], r["name"]) for r in remaining}
        assert {row["trigger"] for row in kn.stats()} == {"score"}
        with pytest.raises(KeyError, match="no resource named"):
            kn.delete("nothing-like-this")
    assert ray.is_initialized()  # attached, not started: the tests' Ray stays up
    with pytest.raises(RuntimeError, match="closed"):
        kn.send(make_event("chat.message", {"text": "late"}))

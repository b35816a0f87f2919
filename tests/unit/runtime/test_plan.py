"""Planning: manifests become a resolved description of what must run."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest

from knray.errors import ManifestError, ManifestWarning
from knray.manifests import load_manifests, parse_manifests
from knray.runtime.plan import TargetKind, build_plan

REPO = Path(__file__).resolve().parents[3]


def _plan(text: str):  # type: ignore[no-untyped-def]
    return build_plan(parse_manifests(textwrap.dedent(text)).resources)


def test_live_chat_plan_resolves_every_reference() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        plan = build_plan(load_manifests(REPO / "configs" / "live-chat"))
    (broker,) = plan.brokers
    assert broker.key == "streaming/live-chat"
    by_name = {t.trigger.name: t for t in broker.triggers}
    assert set(by_name) == {
        "moderate-messages",
        "room-sentiment",
        "escalate-toxic",
        "thank-big-gifts",
    }
    moderate = by_name["moderate-messages"]
    assert moderate.subscriber.kind is TargetKind.SERVICE
    assert moderate.subscriber.key == "streaming/moderation"
    # The trigger's delivery replaces the broker's: 5 linear retries, its own dead-letter sink.
    assert moderate.delivery is not None
    assert moderate.delivery.retry == 5
    assert by_name["room-sentiment"].delivery is not None
    assert by_name["room-sentiment"].delivery.retry == 3  # the broker's
    assert by_name["room-sentiment"].dead_letter is not None
    assert by_name["escalate-toxic"].ordered
    assert not moderate.ordered
    (source,) = plan.sources
    assert source.sink.kind is TargetKind.BROKER
    assert source.sink.key == "streaming/live-chat"
    assert {s.key for s in plan.services} == {
        "streaming/moderation",
        "streaming/sentiment",
        "streaming/chat-dead-letters",
    }


def test_article_plan_sends_the_source_to_a_uri() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        plan = build_plan(load_manifests(REPO / "configs" / "article"))
    (source,) = plan.sources
    assert source.sink.kind is TargetKind.URI
    assert source.sink.uri == "http://101.200.177.84"


def test_unresolvable_references_are_all_reported() -> None:
    with pytest.raises(ManifestError) as caught:
        _plan(
            """
            apiVersion: eventing.knative.dev/v1
            kind: Trigger
            metadata: {name: t}
            spec:
              broker: missing
              subscriber:
                ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: nowhere}
            ---
            apiVersion: eventing.knative.dev/v1
            kind: Broker
            metadata: {name: default}
            ---
            apiVersion: eventing.knative.dev/v1
            kind: Trigger
            metadata: {name: u}
            spec:
              broker: default
              subscriber:
                ref: {apiVersion: v1, kind: Pod, name: p}
            """
        )
    message = str(caught.value)
    assert "Broker default/missing is not defined" in message
    assert "not v1 Pod" in message

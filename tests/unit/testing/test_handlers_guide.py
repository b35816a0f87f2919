"""The tests docs/handlers.md shows, run as written: a batch handler tested with
``knray.testing`` alone (no Ray, no Kafka)."""

from __future__ import annotations

from pathlib import Path

from examples.livechat.scoring import score_messages
from knray.manifests.builders import broker, delivery, service, trigger
from knray.testing import InMemoryBroker, make_event


def test_scores_each_message_and_fails_only_the_bad_one() -> None:
    results = score_messages(
        [
            make_event("chat.message", {"text": "you stupid idiot"}, id="m1"),
            make_event("chat.message", {"user": "no text"}, id="m2"),
        ]
    )
    assert results[0].get_type() == "chat.scored"
    assert results[0].get_data()["toxicity"] > 0.8
    assert isinstance(results[1], ValueError)


def chat_app() -> InMemoryBroker:
    return InMemoryBroker(
        [
            broker(
                "chat",
                delivery=delivery(
                    retry=3,
                    backoff_policy="exponential",
                    backoff_delay_s=0.2,
                    dead_letter_sink="dead-letters",
                ),
            ),
            service("scoring", handler=score_messages),
            service("alerts", handler="examples.livechat.handlers:RoomSentiment"),
            service("dead-letters", image="event-display"),
            trigger("score", broker="chat", subscriber="scoring", exact={"type": "chat.message"}),
            trigger(
                "alert-toxic",
                broker="chat",
                subscriber="alerts",
                cel='event.type == "chat.scored" && event.data.toxicity > 0.8',
            ),
        ]
    )


def test_toxic_messages_reach_the_alerts_and_bad_ones_the_dead_letters() -> None:
    app = chat_app()
    outcomes = app.send(
        [
            make_event("chat.message", {"text": "you stupid idiot"}, id="m1"),
            make_event("chat.message", {"text": "love this stream"}, id="m2"),
            make_event("chat.message", {"user": "no text"}, id="m3"),
        ]
    )
    assert [o.status for o in outcomes] == ["delivered", "delivered", "dead_lettered"]
    assert [e.get_id() for e in app.service("alerts").received] == ["m1-scored"]
    (letter,) = app.service("dead-letters").received
    assert letter.get_id() == "m3"
    assert letter["knativeerrordest"] == "memory://default/scoring"
    assert app.retry_delays_s == [0.4, 0.8, 1.6]  # exponential: 0.2 x 2^n, not slept
    assert app.stats()["routes"]["Trigger/default/score"]["retries"] == 3


def test_the_guide_shows_these_tests_as_they_are() -> None:
    guide = (Path(__file__).resolve().parents[3] / "docs" / "handlers.md").read_text()
    source = Path(__file__).read_text().split("from pathlib import Path\n\n", 1)[1]
    shown = source.split("\n\n\ndef test_the_guide_shows", 1)[0]
    assert shown in guide

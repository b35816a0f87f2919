"""Live-chat handlers: toxicity moderation and room sentiment.

They score text with small word lists so the example runs anywhere; swap in a model (see
docs) without changing the event flow.
"""

from __future__ import annotations

import re
import time
from typing import Any

from knray import CloudEvent

_TOXIC_WORDS = frozenset({"idiot", "stupid", "trash", "loser", "hate", "shut", "dumb", "noob"})
_POSITIVE_WORDS = frozenset({"love", "great", "awesome", "gg", "wow", "nice", "thanks", "lol"})
_NEGATIVE_WORDS = frozenset({"boring", "bad", "lag", "worst", "meh", "hate", "cringe"})
_WORD = re.compile(r"[a-z']+")
# Stands in for model inference time, so the demo shows replicas scaling with events in flight.
MODEL_LATENCY_S = 0.02


def _words(event: CloudEvent) -> list[str]:
    data: Any = event.get_data()
    text = data.get("text", "") if isinstance(data, dict) else str(data or "")
    return _WORD.findall(text.lower())


def toxicity(words: list[str]) -> float:
    """Share of toxic words, scaled so two toxic words in a short message score near 1."""
    if not words:
        return 0.0
    hits = sum(word in _TOXIC_WORDS for word in words)
    return min(1.0, 2.5 * hits / len(words) + (0.5 if hits >= 2 else 0.0))


def moderate(event: CloudEvent) -> CloudEvent:
    """Score a chat message; reply with a ``chat.moderated`` event carrying the score."""
    time.sleep(MODEL_LATENCY_S)
    score = round(toxicity(_words(event)), 3)
    data = event.get_data() if isinstance(event.get_data(), dict) else {}
    return CloudEvent(
        {
            "specversion": "1.0",
            "id": f"{event.get_id()}-moderated",
            "source": "/live-chat/moderation",
            "type": "chat.moderated",
            "subject": event.get_subject() or "room/unknown",
            "datacontenttype": "application/json",
        },
        {"message_id": event.get_id(), "user": data.get("user"), "toxicity": score},
    )


class RoomSentiment:
    """Keeps a sentiment meter per room (one instance per replica) and logs it now and then."""

    def __init__(self, log_every: int = 500) -> None:
        self.meters: dict[str, int] = {}
        self.seen = 0
        self.log_every = log_every

    def __call__(self, event: CloudEvent) -> None:
        words = _words(event)
        score = sum(w in _POSITIVE_WORDS for w in words) - sum(w in _NEGATIVE_WORDS for w in words)
        if event.get_type() == "chat.gift":
            score += 1
        room = event.get_subject() or "room/unknown"
        self.meters[room] = self.meters.get(room, 0) + score
        self.seen += 1
        if self.seen % self.log_every == 0:
            meters = ", ".join(f"{room}: {value:+d}" for room, value in sorted(self.meters.items()))
            print(f"room sentiment after {self.seen} events: {meters}", flush=True)

"""Synthetic live-chat traffic: chat messages and gifts from viewers of streaming rooms."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from knray.events import CloudEvent

__all__ = ["GIFTS_TOPIC", "MESSAGES_TOPIC", "ChatTraffic"]

MESSAGES_TOPIC = "live-chat.messages"
GIFTS_TOPIC = "live-chat.gifts"

_FRIENDLY = [
    "gg that was awesome",
    "wow nice play",
    "love this stream",
    "lol great timing",
    "thanks for the tips",
    "this lag is bad",
    "meh boring round",
    "hello from lisbon",
]
_TOXIC = ["you stupid idiot", "shut up loser", "trash player dumb noob", "i hate you idiot"]


@dataclass
class ChatTraffic:
    """A deterministic stream of chat events (seeded), as a streaming front end emits them."""

    seed: int = 7
    rooms: int = 6
    toxic_share: float = 0.08
    gift_share: float = 0.1

    def events(self, count: int, *, start: int = 0) -> Iterator[tuple[str, CloudEvent]]:
        """``count`` (topic, event) pairs; ids are unique across calls with distinct ``start``."""
        rng = random.Random(self.seed + start)
        for number in range(start, start + count):
            room = rng.randrange(self.rooms)
            visibility = "public" if room < self.rooms - 2 else "private"
            subject = f"room/{visibility}-{room}"
            user = f"viewer-{rng.randrange(5000)}"
            attributes = {
                "specversion": "1.0",
                "id": f"chat-{number}",
                "source": f"/live-chat/{visibility}-{room}",
                "subject": subject,
                "datacontenttype": "application/json",
            }
            if rng.random() < self.gift_share:
                amount = rng.choice([1, 5, 10, 50, 100, 500])
                data = {"user": user, "amount": amount, "gift": "rose"}
                yield GIFTS_TOPIC, CloudEvent(attributes | {"type": "chat.gift"}, data)
            else:
                pool = _TOXIC if rng.random() < self.toxic_share else _FRIENDLY
                data = {"user": user, "text": rng.choice(pool)}
                yield MESSAGES_TOPIC, CloudEvent(attributes | {"type": "chat.message"}, data)

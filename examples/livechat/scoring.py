"""A batch handler as docs/handlers.md writes it: scores many chat messages per call and
fails only the events it cannot score."""

from __future__ import annotations

from typing import Any

from examples.livechat.handlers import toxicity
from knray import CloudEvent
from knray.serving import batch_handler


def _text(event: CloudEvent) -> str | None:
    data: Any = event.get_data()
    text = data.get("text") if isinstance(data, dict) else None
    return text if isinstance(text, str) else None


@batch_handler(max_batch_size=32, batch_wait_timeout_s=0.01)
def score_messages(events: list[CloudEvent]) -> list[CloudEvent | Exception]:
    """One result per event: a ``chat.scored`` reply, or the error of that event alone."""
    results: list[CloudEvent | Exception] = []
    for event in events:
        text = _text(event)
        if text is None:
            results.append(ValueError(f"event {event.get_id()} has no text to score"))
            continue
        score = round(toxicity(text.lower().split()), 3)
        results.append(
            CloudEvent(
                {
                    "specversion": "1.0",
                    "id": f"{event.get_id()}-scored",
                    "source": "/live-chat/scoring",
                    "type": "chat.scored",
                    "subject": event.get_subject() or "room/unknown",
                    "datacontenttype": "application/json",
                },
                {"message_id": event.get_id(), "toxicity": score},
            )
        )
    return results

"""Outcomes and subscriber responses cross Ray processes in a packed form."""

from __future__ import annotations

import pickle

from knray.broker import DeliveryStatus, Outcome, SubscriberResponse
from knray.broker.outcome import pack_outcomes, pack_responses, unpack_outcomes, unpack_responses
from knray.events import CloudEvent


def test_outcomes_survive_their_wire_form() -> None:
    outcomes = [
        Outcome(DeliveryStatus.DELIVERED),
        Outcome(DeliveryStatus.FAILED, "subscriber said 503"),
        Outcome(DeliveryStatus.DEAD_LETTERED, "retries exhausted"),
    ]
    restored = unpack_outcomes(pickle.loads(pickle.dumps(pack_outcomes(outcomes))))
    assert restored == outcomes
    assert [o.finished for o in restored] == [True, False, True]


def test_responses_and_their_replies_survive_their_wire_form() -> None:
    reply = CloudEvent({"specversion": "1.0", "id": "r", "source": "/s", "type": "reply"}, {"a": 1})
    responses = [
        SubscriberResponse(200, reply=reply),
        SubscriberResponse(None, error="timed out"),
        SubscriberResponse(429, retry_after_s=2.5, body=b"slow down"),
    ]
    restored = unpack_responses(pickle.loads(pickle.dumps(pack_responses(responses))))
    assert restored == responses
    assert restored[0].reply is not None
    assert restored[0].reply.get_data() == {"a": 1}
    assert [r.ok for r in restored] == [True, False, False]

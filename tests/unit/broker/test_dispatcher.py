"""The dispatcher: fan-out, batched retries, dead letters, replies, TTL, outcomes, stats."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from knray.broker import DeliveryStatus, SubscriberResponse
from knray.broker.dispatcher import Dispatcher, Route
from knray.broker.retry import DeliveryPolicy
from knray.events import CloudEvent
from knray.filters import ExactFilter, MatchAll
from knray.manifests import BackoffPolicy, DeliverySpec, Trigger, load_manifests
from tests.unit.broker.fakes import FakeSleep, FakeSubscriber, always, failing, make_event

T0 = datetime(2024, 5, 1, 8, 30, 0, 123456, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        result = self.now
        self.now += timedelta(seconds=1)
        return result


def route(
    key: str = "Trigger/default/t",
    subscriber: FakeSubscriber | None = None,
    *,
    filter_: Any = None,
    dead_letter: FakeSubscriber | None = None,
    ordered: bool = False,
    **policy: Any,
) -> Route:
    return Route(
        key=key,
        filter=filter_ or MatchAll(),
        subscriber=subscriber or FakeSubscriber(),
        policy=DeliveryPolicy(**policy),
        dead_letter=dead_letter,
        ordered=ordered,
    )


def dispatcher(*routes: Route, sleep: FakeSleep | None = None, **kwargs: Any) -> Dispatcher:
    return Dispatcher(routes, broker_name="default", sleep=sleep or FakeSleep(), **kwargs)


async def test_delivers_a_batch_in_one_call_without_the_broker_ttl() -> None:
    sub = FakeSubscriber()
    outcomes = await dispatcher(route(subscriber=sub)).deliver([make_event("1"), make_event("2")])
    assert [o.status for o in outcomes] == [DeliveryStatus.DELIVERED] * 2
    assert all(o.finished and o.error is None for o in outcomes)
    assert len(sub.calls) == 1
    assert [e.get_id() for e in sub.calls[0]] == ["1", "2"]
    # filter_handler.go: the TTL is the broker's business, the subscriber never sees it.
    assert all("knativebrokerttl" not in e for e in sub.received)


async def test_retry_count_is_exact_and_follows_the_backoff_schedule() -> None:
    sleep = FakeSleep()
    sub = FakeSubscriber(always(503))
    d = dispatcher(
        route(
            subscriber=sub,
            retry=3,
            backoff_policy=BackoffPolicy.EXPONENTIAL,
            backoff_delay_s=0.5,
        ),
        sleep=sleep,
    )
    [outcome] = await d.deliver([make_event()])
    assert sub.attempts["1"] == 4  # the first attempt and exactly 3 retries
    assert sleep.delays == [1.0, 2.0, 4.0]
    assert outcome.status is DeliveryStatus.DROPPED
    assert outcome.finished
    assert "HTTP 503" in (outcome.error or "")
    counters = d.stats()["routes"]["Trigger/default/t"]
    assert counters["retries"] == 3
    assert counters["dropped"] == 1


async def test_failing_then_succeeding_is_delivered() -> None:
    sleep = FakeSleep()
    sub = FakeSubscriber(failing(2, code=None))
    d = dispatcher(
        route(subscriber=sub, retry=5, backoff_policy=BackoffPolicy.LINEAR, backoff_delay_s=0.1),
        sleep=sleep,
    )
    [outcome] = await d.deliver([make_event()])
    assert outcome.status is DeliveryStatus.DELIVERED
    assert sub.attempts["1"] == 3
    assert sleep.delays == pytest.approx([0.1, 0.2])


async def test_non_retryable_code_goes_straight_to_the_dead_letter_sink() -> None:
    sub = FakeSubscriber(always(400))
    dls = FakeSubscriber(address="fake://dls")
    d = dispatcher(route(subscriber=sub, dead_letter=dls, retry=5))
    [outcome] = await d.deliver([make_event()])
    assert sub.attempts["1"] == 1
    assert outcome.status is DeliveryStatus.DEAD_LETTERED
    assert dls.received[0]["knativeerrorcode"] == 400


async def test_dead_letter_extensions_are_exact() -> None:
    body = b'{"error":"overloaded"}'
    sub = FakeSubscriber(always(503, body=body), address="http://127.0.0.1:1/sub")
    dls = FakeSubscriber(address="fake://dls")
    clock = FakeClock()
    d = dispatcher(route(subscriber=sub, dead_letter=dls, retry=1), clock=clock)
    original = make_event("1", data={"x": 1}, datacontenttype="application/json")
    [outcome] = await d.deliver([original])
    assert outcome.status is DeliveryStatus.DEAD_LETTERED
    assert outcome.finished
    [letter] = dls.received
    assert letter.get_attributes() == original.get_attributes() | {
        "knativearrivaltime": "2024-05-01T08:30:00.123456Z",
        "knativeerrordest": "http://127.0.0.1:1/sub",
        "knativeerrorcode": 503,
        "knativeerrordata": base64.b64encode(body).decode(),
    }
    assert letter.get_data() == {"x": 1}
    assert dls.attempts["1"] == 1


async def test_dead_letter_data_without_response_and_truncation() -> None:
    dls_a = FakeSubscriber(address="fake://dls-a")
    dls_b = FakeSubscriber(address="fake://dls-b")
    d = dispatcher(
        route("Trigger/default/a", FakeSubscriber(always(None, error="boom")), dead_letter=dls_a),
        route(
            "Trigger/default/b", FakeSubscriber(always(500, body=b"x" * 5000)), dead_letter=dls_b
        ),
    )
    await d.deliver([make_event()])
    # event_dispatcher.go: no response is code 500 with body "dispatch error: <err>" ...
    [no_response] = dls_a.received
    assert no_response["knativeerrorcode"] == 500
    assert base64.b64decode(no_response["knativeerrordata"]) == b"dispatch error: boom"
    # ... and a long body is cut to 1024 base64 characters.
    [long] = dls_b.received
    assert len(long["knativeerrordata"]) == 1024
    assert base64.b64decode(long["knativeerrordata"]) == b"x" * 768


async def test_failed_dead_letter_sink_means_failed_not_finished() -> None:
    sleep = FakeSleep()
    dls = FakeSubscriber(always(503), address="fake://dls")
    d = dispatcher(route(subscriber=FakeSubscriber(always(500)), dead_letter=dls, retry=2))
    d._sleep = sleep
    [outcome] = await d.deliver([make_event()])
    assert outcome.status is DeliveryStatus.FAILED
    assert not outcome.finished
    assert dls.attempts["1"] == 3  # the DLS is retried with the same retry config
    assert "fake://dls" in (outcome.error or "")
    assert d.stats()["routes"]["Trigger/default/t"]["failed"] == 1


async def test_dropped_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    d = dispatcher(route(subscriber=FakeSubscriber(always(404))))
    [outcome] = await d.deliver([make_event("e-1")])
    assert outcome.status is DeliveryStatus.DROPPED
    assert "no dead-letter sink" in caplog.text
    assert "e-1" in caplog.text
    assert d.stats()["totals"]["dropped"] == 1


async def test_batch_with_mixed_outcomes_retries_only_the_failed_events() -> None:
    def respond(event: CloudEvent, attempt: int, timeout: float | None) -> SubscriberResponse:
        kind = event["id"]
        if kind == "ok":
            return SubscriberResponse(200)
        if kind == "flaky":
            return SubscriberResponse(503 if attempt == 1 else 202)
        if kind == "bad":
            return SubscriberResponse(400)
        return SubscriberResponse(500)

    sub = FakeSubscriber(respond)
    dls = FakeSubscriber(address="fake://dls")
    ok_only = route("Trigger/default/dls", sub, dead_letter=dls, retry=2)
    d = dispatcher(ok_only)
    events = [make_event(i) for i in ("ok", "flaky", "bad", "broken")]
    outcomes = await d.deliver(events)
    assert [o.status for o in outcomes] == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.DEAD_LETTERED,
        DeliveryStatus.DEAD_LETTERED,
    ]
    assert [[e.get_id() for e in call] for call in sub.calls] == [
        ["ok", "flaky", "bad", "broken"],
        ["flaky", "broken"],
        ["broken"],
    ]
    assert len(dls.calls) == 1  # dead letters of one route go in one batch
    assert sorted(e.get_id() for e in dls.received) == ["bad", "broken"]


async def test_retry_after_is_honoured_and_capped() -> None:
    sleep = FakeSleep()
    sub = FakeSubscriber(failing(2, code=429, retry_after_s=30.0))
    d = dispatcher(
        route(
            subscriber=sub,
            retry=3,
            backoff_policy=BackoffPolicy.LINEAR,
            backoff_delay_s=1.0,
            retry_after_max_s=5.0,
        ),
        sleep=sleep,
    )
    [outcome] = await d.deliver([make_event()])
    assert outcome.status is DeliveryStatus.DELIVERED
    assert sleep.delays == [5.0, 5.0]


async def test_timeout_is_passed_per_attempt_and_a_hanging_subscriber_is_cut_off() -> None:
    class Hanging(FakeSubscriber):
        async def send(self, events: Any, timeout_s: float | None) -> list[SubscriberResponse]:
            await super().send(events, timeout_s)
            import asyncio  # noqa: PLC0415

            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

    sub = Hanging()
    d = dispatcher(route(subscriber=sub, retry=1, timeout_s=0.01))
    [outcome] = await d.deliver([make_event()])
    assert sub.timeouts == [0.01, 0.01]
    assert outcome.status is DeliveryStatus.DROPPED
    assert "no response" in (outcome.error or "")


async def test_timing_out_subscriber_counts_as_no_response() -> None:
    sub = FakeSubscriber(lambda e, a, t: SubscriberResponse(None, error=f"timed out after {t}s"))
    dls = FakeSubscriber(address="fake://dls")
    d = dispatcher(route(subscriber=sub, dead_letter=dls, retry=2, timeout_s=0.5))
    [outcome] = await d.deliver([make_event()])
    assert sub.attempts["1"] == 3
    assert outcome.status is DeliveryStatus.DEAD_LETTERED
    [letter] = dls.received
    assert letter["knativeerrorcode"] == 500
    assert base64.b64decode(letter["knativeerrordata"]) == b"dispatch error: timed out after 0.5s"


async def test_fan_out_filters_and_aggregation() -> None:
    a = FakeSubscriber()
    b = FakeSubscriber(always(400))
    dls = FakeSubscriber(address="fake://dls")
    d = dispatcher(
        route("Trigger/default/a", a, filter_=ExactFilter("type", "order.created")),
        route(
            "Trigger/default/b",
            b,
            filter_=ExactFilter("subject", "vip"),
            dead_letter=dls,
        ),
        route("Trigger/default/c", FakeSubscriber(), filter_=ExactFilter("type", "order.created")),
    )
    events = [
        make_event("1", type="order.created"),
        make_event("2", type="order.created", subject="vip"),
        make_event("3", type="other"),
        make_event("4", type="other", subject="vip"),
    ]
    outcomes = await d.deliver(events)
    assert [o.status for o in outcomes] == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.DEAD_LETTERED,
        DeliveryStatus.FILTERED,
        DeliveryStatus.DEAD_LETTERED,
    ]
    assert [e.get_id() for e in a.received] == ["1", "2"]
    stats = d.stats()
    assert stats["broker"] == "default"
    assert stats["routes"]["Trigger/default/a"]["matched"] == 2
    assert stats["routes"]["Trigger/default/b"]["dead_lettered"] == 2
    assert stats["routes"]["Trigger/default/c"]["delivered"] == 2
    assert stats["totals"]["filtered"] == 1
    assert stats["totals"]["received"] == 4
    assert stats["totals"]["delivered"] == 4


async def test_one_failed_route_fails_the_event() -> None:
    d = dispatcher(
        route("Trigger/default/a", FakeSubscriber()),
        route(
            "Trigger/default/b",
            FakeSubscriber(always(500)),
            dead_letter=FakeSubscriber(always(500)),
        ),
    )
    [outcome] = await d.deliver([make_event()])
    assert outcome.status is DeliveryStatus.FAILED
    assert "Trigger/default/b" in (outcome.error or "")


async def test_arrival_time_is_stamped_once_per_ingress() -> None:
    clock = FakeClock()
    a = FakeSubscriber(failing(1))
    b = FakeSubscriber()
    d = dispatcher(
        route("Trigger/default/a", a, retry=2), route("Trigger/default/b", b), clock=clock
    )
    await d.deliver([make_event("1"), make_event("2")])
    stamps = {e["knativearrivaltime"] for e in a.received + b.received}
    assert stamps == {"2024-05-01T08:30:00.123456Z"}
    assert len(a.received) == 4  # retried deliveries keep the stamp of arrival


async def test_replies_re_enter_the_broker_with_the_ttl_decremented() -> None:
    def reply(event: CloudEvent, attempt: int, timeout: float | None) -> SubscriberResponse:
        answer = CloudEvent(
            {"specversion": "1.0", "id": "r-" + event.get_id(), "source": "/h", "type": "reply"}
        )
        return SubscriberResponse(200, reply=answer)

    replier = FakeSubscriber(reply)
    sink = FakeSubscriber()
    d = dispatcher(
        route("Trigger/default/ask", replier, filter_=ExactFilter("type", "test.event")),
        route("Trigger/default/all", sink),
        clock=FakeClock(),
    )
    [outcome] = await d.deliver([make_event("1")])
    assert outcome.status is DeliveryStatus.DELIVERED
    assert [e.get_id() for e in sink.received] == ["1", "r-1"]
    reply_seen = sink.received[1]
    # The reply got its own arrival time when it re-entered.
    assert reply_seen["knativearrivaltime"] == "2024-05-01T08:30:01.123456Z"
    assert d.stats()["routes"]["Trigger/default/ask"]["replies"] == 1
    assert d.stats()["totals"]["reply_events"] == 1


async def test_reply_loop_stops_when_the_ttl_is_exhausted(caplog: pytest.LogCaptureFixture) -> None:
    seen_ttls: list[int] = []

    def echo(event: CloudEvent, attempt: int, timeout: float | None) -> SubscriberResponse:
        return SubscriberResponse(200, reply=event.evolve({"id": event.get_id() + "+"}))

    sub = FakeSubscriber(echo)
    d = dispatcher(route(subscriber=sub), default_ttl=5)
    original = d._ingress  # observe the TTL of everything that enters

    def spy(
        event: CloudEvent, ttl: int | None, now: datetime, *, reply: bool
    ) -> tuple[CloudEvent, int] | None:
        admitted = original(event, ttl, now, reply=reply)
        if admitted is not None:
            seen_ttls.append(admitted[1])
        return admitted

    d._ingress = spy  # type: ignore[method-assign]
    [outcome] = await d.deliver([make_event("1")])
    assert outcome.status is DeliveryStatus.DELIVERED
    assert seen_ttls == [5, 4, 3, 2, 1]
    assert len(sub.received) == 5
    assert d.stats()["totals"]["ttl_dropped"] == 1
    assert "exhausted" in caplog.text


async def test_event_arriving_with_ttl_one_is_dropped_at_ingress() -> None:
    sub = FakeSubscriber()
    d = dispatcher(route(subscriber=sub))
    outcomes = await d.deliver([make_event("1", knativebrokerttl=1), make_event("2")])
    assert [o.status for o in outcomes] == [DeliveryStatus.DROPPED, DeliveryStatus.DELIVERED]
    assert [e.get_id() for e in sub.received] == ["2"]


async def test_a_failed_reply_keeps_its_cause_unfinished() -> None:
    def reply(event: CloudEvent, attempt: int, timeout: float | None) -> SubscriberResponse:
        if event.get_type() == "reply":
            return SubscriberResponse(200)
        return SubscriberResponse(200, reply=make_event("r", type="reply"))

    failing_sink = route(
        "Trigger/default/replies",
        FakeSubscriber(always(500)),
        filter_=ExactFilter("type", "reply"),
        dead_letter=FakeSubscriber(always(503)),
    )
    d = dispatcher(route("Trigger/default/ask", FakeSubscriber(reply)), failing_sink)
    [outcome] = await d.deliver([make_event("1")])
    assert outcome.status is DeliveryStatus.FAILED
    assert not outcome.finished
    assert "reply r" in (outcome.error or "")


async def test_ordered_route_delivers_one_event_at_a_time_in_order() -> None:
    sleep = FakeSleep()
    sub = FakeSubscriber(
        lambda e, a, t: SubscriberResponse(503 if e["id"] == "2" and a == 1 else 200)
    )
    d = dispatcher(route(subscriber=sub, ordered=True, retry=1), sleep=sleep)
    outcomes = await d.deliver([make_event(str(i)) for i in range(1, 5)])
    assert all(o.status is DeliveryStatus.DELIVERED for o in outcomes)
    # Event 2 is retried before event 3 is sent.
    assert [[e.get_id() for e in call] for call in sub.calls] == [["1"], ["2"], ["2"], ["3"], ["4"]]


async def test_trigger_delivery_overrides_broker_delivery() -> None:
    [trigger] = load_manifests(
        """
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: orders
  annotations:
    kafka.eventing.knative.dev/delivery.order: ordered
spec:
  broker: default
  filter:
    attributes:
      type: order.created
  subscriber:
    uri: http://127.0.0.1:9/
  delivery:
    retry: 1
"""
    )
    assert isinstance(trigger, Trigger)
    broker_delivery = DeliverySpec(
        retry=7, backoff_policy=BackoffPolicy.LINEAR, backoff_delay="PT1S"
    )
    sub = FakeSubscriber(always(503))
    r = Route.from_trigger(trigger, sub, broker_delivery=broker_delivery)
    assert r.key == "Trigger/default/orders"
    assert r.name == "orders"
    assert r.ordered
    assert r.policy == DeliveryPolicy(retry=1)
    sleep = FakeSleep()
    outcomes = await dispatcher(r, sleep=sleep).deliver(
        [make_event("1", type="order.created"), make_event("2")]
    )
    assert [o.status for o in outcomes] == [DeliveryStatus.DROPPED, DeliveryStatus.FILTERED]
    assert sub.attempts["1"] == 2
    assert sleep.delays == [0.0]


async def test_update_routes_keeps_counters_of_remaining_routes() -> None:
    a = route("Trigger/default/a")
    d = dispatcher(a)
    await d.deliver([make_event()])
    b = route("Trigger/default/b")
    d.update_routes([a, b])
    await d.deliver([make_event()])
    assert d.stats()["routes"]["Trigger/default/a"]["delivered"] == 2
    assert d.stats()["routes"]["Trigger/default/b"]["delivered"] == 1
    d.update_routes([b])
    assert list(d.stats()["routes"]) == ["Trigger/default/b"]
    assert d.stats()["totals"]["delivered"] == 3
    with pytest.raises(ValueError, match="duplicate"):
        d.update_routes([b, b])


async def test_a_raising_subscriber_or_filter_never_breaks_delivery() -> None:
    class Raising(FakeSubscriber):
        async def send(self, events: Any, timeout_s: float | None) -> list[SubscriberResponse]:
            raise RuntimeError("crash")

    class BadFilter:
        def match(self, event: CloudEvent) -> bool:
            raise RuntimeError("bad filter")

    d = dispatcher(
        route("Trigger/default/a", Raising()),
        route("Trigger/default/b", FakeSubscriber(), filter_=BadFilter()),
    )
    [outcome] = await d.deliver([make_event()])
    assert outcome.status is DeliveryStatus.DROPPED
    assert "RuntimeError: crash" in (outcome.error or "")
    assert d.stats()["routes"]["Trigger/default/b"]["matched"] == 0


async def test_no_routes_means_filtered() -> None:
    outcomes = await dispatcher().deliver([make_event()])
    assert [o.status for o in outcomes] == [DeliveryStatus.FILTERED]
    assert await dispatcher().deliver([]) == []


class RecordingSink:
    """An EventSink recording what it gets; answers every event with ``status``."""

    def __init__(self, status: DeliveryStatus = DeliveryStatus.DELIVERED) -> None:
        self.status = status
        self.received: list[CloudEvent] = []

    async def deliver(self, events: Any) -> list[Any]:
        from knray.broker import Outcome  # noqa: PLC0415

        self.received.extend(events)
        return [Outcome(self.status, None if self.status.value != "failed" else "no")] * len(events)


async def test_stamped_events_are_not_stamped_again() -> None:
    sub = FakeSubscriber()
    d = dispatcher(route(subscriber=sub), clock=FakeClock())
    stamped = make_event("1", knativearrivaltime="2020-01-01T00:00:00.000000Z", knativebrokerttl=1)
    [outcome] = await d.deliver([stamped], stamped=True)
    assert outcome.status is DeliveryStatus.DELIVERED
    [received] = sub.received
    # Neither decremented (1 would be 0: dropped) nor re-stamped.
    assert received["knativearrivaltime"] == "2020-01-01T00:00:00.000000Z"
    assert "knativebrokerttl" not in received


async def test_replies_go_to_the_reply_sink_with_the_ttl_of_their_cause() -> None:
    def reply(event: CloudEvent, attempt: int, timeout: float | None) -> SubscriberResponse:
        return SubscriberResponse(200, reply=make_event("r-" + event.get_id(), type="reply"))

    sub = FakeSubscriber(reply)
    replies = RecordingSink()
    d = dispatcher(route(subscriber=sub), reply_sink=replies, default_ttl=9)
    [outcome] = await d.deliver([make_event("1")])
    assert outcome.status is DeliveryStatus.DELIVERED
    assert [e.get_id() for e in sub.received] == ["1"]  # not re-dispatched here
    [sent] = replies.received
    assert sent.get_id() == "r-1"
    # The reply carries the TTL its cause had here; the reply sink's ingress decrements it.
    assert sent["knativebrokerttl"] == 9
    assert d.stats()["totals"]["reply_events"] == 1


async def test_a_reply_the_reply_sink_refuses_keeps_its_cause_unfinished() -> None:
    def reply(event: CloudEvent, attempt: int, timeout: float | None) -> SubscriberResponse:
        return SubscriberResponse(200, reply=make_event("r", type="reply"))

    d = dispatcher(
        route(subscriber=FakeSubscriber(reply)), reply_sink=RecordingSink(DeliveryStatus.FAILED)
    )
    [outcome] = await d.deliver([make_event("1")])
    assert outcome.status is DeliveryStatus.FAILED
    assert "reply r" in (outcome.error or "")


async def test_recent_deliveries_keep_the_final_results_and_stay_bounded() -> None:
    def respond(event: CloudEvent, attempt: int, timeout: float | None) -> SubscriberResponse:
        if event["id"] == "bad":
            return SubscriberResponse(500)
        if event["id"] == "ok":
            return SubscriberResponse(200, reply=make_event("ok-reply"))
        return SubscriberResponse(200)

    sub = FakeSubscriber(respond)
    other = route("Trigger/default/other", filter_=ExactFilter("type", "nothing"))
    d = dispatcher(
        route("Trigger/default/t", sub, dead_letter=FakeSubscriber(), retry=1),
        other,
        recent_limit=3,
    )
    await d.deliver([make_event("ok"), make_event("bad")])
    rows = d.recent("Trigger/default/t")
    by_id = {row["id"]: row for row in rows if row["id"] in {"ok", "bad"}}
    assert by_id["ok"]["status"] == "delivered"
    assert by_id["ok"]["reply_type"] == make_event("x")["type"]
    assert by_id["bad"]["status"] == "dead_lettered"
    assert "HTTP 500" in by_id["bad"]["error"]
    assert d.recent("Trigger/default/other") == []
    await d.deliver([make_event(str(i)) for i in range(10)])
    assert [row["id"] for row in d.recent("Trigger/default/t")] == ["7", "8", "9"]
    assert len(d.recent(limit=2)) == 2

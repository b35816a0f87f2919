"""End to end through ``knray.runtime.Runtime``: manifests applied on a real local Ray, events
produced to a real Kafka-protocol broker, handlers running as Serve deployments, HTTP sinks on
loopback.

Handlers (``tests.integration.handlers.recording``) record what they receive in a named
``Recorder`` actor, keyed by the test's run id (the ``testrun`` extension every event carries).
Every test uses its own namespace, topic and consumer group. Nothing waits on a sleep: tests
poll counters (source ``finished``, Recorder contents) until a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import textwrap
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from aiohttp import web

from knray.cli.run import override_bootstrap
from knray.errors import ManifestWarning
from knray.events import CloudEvent
from knray.manifests import KafkaSource, Resource, parse_manifests
from knray.manifests.kafka_source import InitialOffset
from knray.runtime import Runtime
from knray.runtime.names import RAY_NAMESPACE, broker_actor_name, source_actor_name
from knray.testing.kafka import produce_events
from tests.integration.handlers import recording
from tests.integration.handlers.recording import RUN_EXTENSION, Recorder

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
HANDLERS = "tests.integration.handlers.recording"
# The shortest session real Kafka accepts (group.min.session.timeout.ms): on Tansu a new group
# forms in about half of it, and a dead consumer's partitions move on after it. Commits every
# 0.5 s bound the duplicates after a kill.
FAST_GROUP = {
    "consumer_options": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500},
    "commit_interval_s": 0.5,
}


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def recorder(ray_local: None) -> Any:
    """The session's Recorder actor (``Recorder`` in namespace ``knray``)."""
    remote: Any = ray.remote(Recorder)
    handle = remote.options(
        name=recording.RECORDER_NAME,
        namespace=recording.RECORDER_NAMESPACE,
        num_cpus=0,
        get_if_exists=True,
    ).remote()
    ray.get(handle.get.remote("warm-up"))
    return handle


@dataclass
class Env:
    """One test's world: its namespace (also its ``testrun`` id), the Kafka broker, the
    Recorder, and the Runtimes it starts (all shut down after the test)."""

    ns: str
    bootstrap: str
    recorder: Any
    make_topic: Callable[..., Awaitable[str]]
    runtimes: list[Runtime] = field(default_factory=list)

    def runtime(self, **options: Any) -> Runtime:
        runtime = Runtime(**{"consumer_options": FAST_GROUP, **options})
        self.runtimes.append(runtime)
        return runtime

    async def apply(self, manifests: str, **options: Any) -> Runtime:
        runtime = self.runtime(**options)
        await asyncio.to_thread(runtime.apply, load(manifests))
        return runtime

    async def topic(self, partitions: int) -> str:
        return await self.make_topic(partitions=partitions)

    async def produce(self, topic: str, events: Sequence[CloudEvent]) -> None:
        await produce_events(self.bootstrap, [(topic, ev) for ev in events])

    def records(self, channel: str) -> list[Any]:
        result: list[Any] = ray.get(self.recorder.get.remote(f"{self.ns}/{channel}"))
        return result

    def ids(self, channel: str) -> list[str]:
        result: list[str] = ray.get(self.recorder.ids.remote(f"{self.ns}/{channel}"))
        return result

    def attempts(self) -> dict[str, int]:
        result: dict[str, int] = ray.get(self.recorder.attempts.remote(f"{self.ns}/attempts"))
        return result

    def event(self, name: str, kind: str, data: Any = None, **extensions: Any) -> CloudEvent:
        """An event with id ``<ns>-<name>`` and the ``testrun`` extension."""
        attributes: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"{self.ns}-{name}",
            "source": "/knray/tests",
            "type": kind,
            RUN_EXTENSION: self.ns,
        }
        if data is not None:
            attributes["datacontenttype"] = "application/json"
        attributes.update(extensions)
        return CloudEvent(attributes, data)


@pytest.fixture
def env(ray_local: None, recorder: Any, kafka_bootstrap: str, kafka_topic: Any) -> Iterator[Env]:
    world = Env(f"it-{uuid.uuid4().hex[:10]}", kafka_bootstrap, recorder, kafka_topic)
    yield world
    for runtime in world.runtimes:
        runtime.shutdown(drain=False)


# --- manifests ------------------------------------------------------------------------------


def load(text: str) -> list[Resource]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        return list(parse_manifests(text).resources)


def _block(text: str, indent: int) -> str:
    return textwrap.indent(textwrap.dedent(text).strip("\n"), " " * indent) + "\n" if text else ""


def service_yaml(ns: str, name: str, handler: str) -> str:
    """A Service running ``tests.integration.handlers.recording:<handler>``, one replica."""
    return textwrap.dedent(f"""\
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata:
          name: {name}
          namespace: {ns}
        spec:
          template:
            metadata:
              annotations:
                knray.dev/handler: {HANDLERS}:{handler}
                autoscaling.knative.dev/min-scale: "1"
                autoscaling.knative.dev/max-scale: "1"
        ---
        """)


def source_yaml(
    ns: str, topic: str, bootstrap: str, *, ordering: str = "unordered", consumers: int = 1
) -> str:
    """A KafkaSource (earliest) into the Broker ``default``, and that Broker."""
    return textwrap.dedent(f"""\
        apiVersion: sources.knative.dev/v1beta1
        kind: KafkaSource
        metadata:
          name: source
          namespace: {ns}
        spec:
          bootstrapServers: ["{bootstrap}"]
          topics: ["{topic}"]
          consumerGroup: {ns}-group
          consumers: {consumers}
          initialOffset: earliest
          ordering: {ordering}
          sink:
            ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
        ---
        apiVersion: eventing.knative.dev/v1
        kind: Broker
        metadata:
          name: default
          namespace: {ns}
        ---
        """)


def trigger_yaml(
    ns: str,
    name: str,
    subscriber: str,
    *,
    filters: str = "",
    annotations: str = "",
    delivery: str = "",
) -> str:
    """A Trigger of the Broker ``default``. ``subscriber``: a Service name or an http:// URI;
    ``filters`` and ``delivery``: YAML blocks of ``spec``; ``annotations``: of ``metadata``."""
    target = (
        f"uri: {subscriber}"
        if subscriber.startswith("http")
        else f"ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: {subscriber}}}"
    )
    return (
        "apiVersion: eventing.knative.dev/v1\n"
        "kind: Trigger\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  namespace: {ns}\n"
        + ("  annotations:\n" + _block(annotations, 4) if annotations else "")
        + "spec:\n"
        "  broker: default\n"
        f"  subscriber:\n    {target}\n" + _block(filters, 2) + _block(delivery, 2) + "---\n"
    )


# --- waiting --------------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Any], what: Callable[[], str] | str, timeout_s: float = 60.0
) -> Any:
    """Poll ``check`` (a blocking function, run in a thread) until it returns a true value."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"not within {timeout_s} s: {detail}")
        await asyncio.sleep(0.1)


def source_counters(runtime: Runtime, ns: str, name: str = "source") -> dict[str, Any]:
    counters: dict[str, Any] = runtime.status()["sources"].get(f"KafkaSource/{ns}/{name}", {})
    return counters


def trigger_counters(runtime: Runtime, ns: str, name: str) -> dict[str, Any]:
    counters: dict[str, Any] = runtime.status()["triggers"].get(f"Trigger/{ns}/{name}", {})
    return counters


async def finished(runtime: Runtime, ns: str, count: int, timeout_s: float = 60) -> None:
    """Wait until the source has a final outcome for ``count`` events."""
    await eventually(
        lambda: source_counters(runtime, ns).get("finished", 0) >= count,
        lambda: f"{count} events finished; status {runtime.status()}",
        timeout_s,
    )


# --- 1. filters -----------------------------------------------------------------------------


async def test_exact_cesql_and_cel_triggers_deliver_exactly_their_events(env: Env) -> None:
    ns = env.ns
    topic = await env.topic(partitions=2)
    manifests = (
        source_yaml(ns, topic, env.bootstrap)
        + service_yaml(ns, "recorder", "record")
        + trigger_yaml(ns, "created", "recorder", filters="filters: [exact: {type: order.created}]")
        + trigger_yaml(
            ns,
            "eu-orders",
            "recorder",
            filters="""
                filters:
                  - cesql: "type LIKE 'order.%' AND subject LIKE 'region/eu%'"
                """,
        )
        + trigger_yaml(
            ns,
            "big-payments",
            "recorder",
            filters="""
                filters:
                  - cel: 'event.type == "order.paid" && event.data.total > 100'
                """,
        )
        + trigger_yaml(
            ns,
            "small-payments",
            "recorder",
            filters="filter: {attributes: {type: order.paid}}",
            annotations="knray.dev/cel-filter: 'event.data.total <= 100'",
        )
    )
    runtime = await env.apply(manifests)

    def e(name: str, kind: str, subject: str | None, total: int = 0) -> CloudEvent:
        extra = {"subject": subject} if subject is not None else {}
        return env.event(name, kind, {"total": total}, **extra)

    cases = [
        # event, the triggers it must reach
        (e("created-us", "order.created", "region/us"), {"created"}),
        (e("created-eu", "order.created", "region/eu-west"), {"created", "eu-orders"}),
        (e("shipped-eu", "order.shipped", "region/eu"), {"eu-orders"}),
        (e("shipped-us", "order.shipped", "region/us"), set()),
        (e("shipped-nosubject", "order.shipped", None), set()),  # CESQL error: no match
        (e("paid-big-us", "order.paid", "region/us", 150), {"big-payments"}),
        (e("paid-big-eu", "order.paid", "region/eu", 150), {"big-payments", "eu-orders"}),
        (e("paid-small-us", "order.paid", "region/us", 50), {"small-payments"}),
        (e("other-eu", "other.thing", "region/eu"), set()),
        (e("created-case", "Order.Created", "region/us"), set()),  # exact is case-sensitive
    ]
    await env.produce(topic, [ev for ev, _ in cases])
    await finished(runtime, ns, len(cases))

    # Every outcome is final, so whatever was to be delivered has been, and only once.
    expected = collections.Counter({ev.get_id(): len(to) for ev, to in cases if to})
    assert collections.Counter(env.ids("received")) == expected
    for trigger in ("created", "eu-orders", "big-payments", "small-payments"):
        count = sum(1 for _, to in cases if trigger in to)
        counters = trigger_counters(runtime, ns, trigger)
        assert (counters["matched"], counters["delivered"]) == (count, count), trigger
    # Events arrive as produced: attributes and data, without the broker's TTL.
    paid = next(r for r in env.records("received") if r["id"] == f"{ns}-paid-big-eu")
    assert paid["data"] == {"total": 150}
    assert paid["attributes"]["subject"] == "region/eu"
    assert paid["attributes"][RUN_EXTENSION] == ns
    assert "knativebrokerttl" not in paid["attributes"]

    final = await asyncio.to_thread(runtime.shutdown, drain=True)
    assert final["sources"][f"KafkaSource/{ns}/source"]["finished"] == len(cases)


# --- 2. retries and dead letters ------------------------------------------------------------


async def test_failing_events_are_retried_then_dead_lettered(env: Env) -> None:
    ns = env.ns
    topic = await env.topic(partitions=1)
    delivery = """
        delivery:
          retry: 2
          backoffPolicy: linear
          backoffDelay: PT0.05S
          deadLetterSink:
            ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: dead-letters}
        """
    runtime = await env.apply(
        source_yaml(ns, topic, env.bootstrap)
        + service_yaml(ns, "flaky", "flaky")
        + service_yaml(ns, "dead-letters", "dead_letters")
        + trigger_yaml(ns, "all", "flaky", delivery=delivery)
    )
    kinds = {"ok": 4, "once": 3, "always": 3}
    events = [
        env.event(f"{kind}-{i}", "work", {"fail": kind})
        for kind, count in kinds.items()
        for i in range(count)
    ]
    await env.produce(topic, events)
    await finished(runtime, ns, len(events))

    def kind(event_id: str) -> str:
        return event_id.split("-")[-2]

    # retry: 2 -> at most 3 attempts
    expected_attempts = {"ok": 1, "once": 2, "always": 3}
    assert env.attempts() == {ev.get_id(): expected_attempts[kind(ev.get_id())] for ev in events}
    assert sorted(env.ids("received")) == sorted(
        ev.get_id() for ev in events if kind(ev.get_id()) != "always"
    )
    dead = {r["id"]: r["attributes"] for r in env.records("dead")}
    assert sorted(dead) == sorted(ev.get_id() for ev in events if kind(ev.get_id()) == "always")
    for event_id, attributes in dead.items():
        assert attributes["knativeerrordest"] == f"serve://{ns}.flaky/{ns}.flaky"
        assert attributes["knativeerrorcode"] == "500"
        message = base64.b64decode(attributes["knativeerrordata"]).decode()
        assert f"boom {event_id} attempt 3" in message
        assert attributes["type"] == "work"  # the original event, extensions added
    counters = trigger_counters(runtime, ns, "all")
    assert counters["delivered"] == 7
    assert counters["dead_lettered"] == 3
    assert counters["retries"] == 3 * 1 + 3 * 2
    assert counters.get("failed", 0) == counters.get("dropped", 0) == 0


# --- 3. replies -----------------------------------------------------------------------------


async def test_a_reply_reaches_a_second_trigger(env: Env) -> None:
    ns = env.ns
    topic = await env.topic(partitions=1)
    runtime = await env.apply(
        source_yaml(ns, topic, env.bootstrap)
        + service_yaml(ns, "replier", "reply_once")
        + trigger_yaml(ns, "orders", "replier", filters="filters: [exact: {type: order.created}]")
        + trigger_yaml(
            ns, "confirmations", "replier", filters="filters: [exact: {type: order.confirmed}]"
        )
    )
    events = [env.event(str(i), "order.created", {"n": i}) for i in range(5)]
    await env.produce(topic, events)
    # A source's event is finished only once its reply is delivered too.
    await finished(runtime, ns, len(events))

    by_id = collections.defaultdict(list)
    for item in env.records("received"):
        by_id[item["id"]].append(item)
    originals = [ev.get_id() for ev in events]
    assert sorted(by_id) == sorted(originals + [f"reply-{i}" for i in originals])
    assert all(len(items) == 1 for items in by_id.values())
    for original in originals:
        (reply,) = by_id[f"reply-{original}"]
        assert reply["type"] == "order.confirmed"
        assert reply["attributes"]["source"] == recording.REPLY_SOURCE
        assert reply["data"] == {"confirms": original}
        assert "knativebrokerttl" not in reply["attributes"]
    orders = trigger_counters(runtime, ns, "orders")
    confirmations = trigger_counters(runtime, ns, "confirmations")
    assert (orders["delivered"], orders["replies"]) == (5, 5)
    assert (confirmations["matched"], confirmations["delivered"]) == (5, 5)


# --- 4. ordered delivery --------------------------------------------------------------------


async def test_ordered_delivery_keeps_each_partition_key_in_order(env: Env) -> None:
    ns = env.ns
    topic = await env.topic(partitions=3)
    runtime = await env.apply(
        source_yaml(ns, topic, env.bootstrap, ordering="ordered")
        + service_yaml(ns, "ordered", "ordered")
        + trigger_yaml(
            ns,
            "in-order",
            "ordered",
            annotations="kafka.eventing.knative.dev/delivery.order: ordered",
            delivery="delivery: {retry: 3, backoffPolicy: linear, backoffDelay: PT0.02S}",
        )
    )
    keys = [f"key-{k}" for k in range(6)]
    per_key = 20
    events = [
        env.event(f"{key}-{seq}", "ordered", {"seq": seq}, partitionkey=key, seq=seq)
        for seq in range(per_key)
        for key in keys
    ]
    await env.produce(topic, events)
    await finished(runtime, ns, len(events), timeout_s=90)

    seen: dict[str, list[int]] = collections.defaultdict(list)
    for item in env.records("ordered"):
        seen[item["key"]].append(item["seq"])
    # Every key in order, each event once, though every fifth event failed once first.
    assert dict(seen) == {key: list(range(per_key)) for key in keys}
    counters = trigger_counters(runtime, ns, "in-order")
    assert counters["retries"] == len(keys) * (per_key // 5)
    assert counters["delivered"] == len(events)


# --- 5. HTTP URI subscriber -----------------------------------------------------------------

Requests = list[tuple[dict[str, str], bytes]]


@pytest.fixture
async def http_sink() -> AsyncIterator[tuple[str, Requests]]:
    """An aiohttp server on 127.0.0.1 (random port): answers 503 to the first request for an
    event whose id ends in ``-busy``, 202 otherwise; records every request."""
    requests: Requests = []

    async def handle(request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        requests.append((headers, await request.read()))
        attempts = sum(1 for h, _ in requests if h.get("ce-id") == headers.get("ce-id"))
        if headers.get("ce-id", "").endswith("-busy") and attempts == 1:
            return web.Response(status=503)
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/events", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/events", requests
    finally:
        await runner.cleanup()


async def test_http_uri_subscriber_gets_binary_mode_events(
    env: Env, http_sink: tuple[str, Requests]
) -> None:
    url, requests = http_sink
    ns = env.ns
    topic = await env.topic(partitions=1)
    runtime = await env.apply(
        source_yaml(ns, topic, env.bootstrap)
        + trigger_yaml(
            ns,
            "to-http",
            url,
            filters="filters: [prefix: {type: http.}]",
            delivery="delivery: {retry: 2, backoffDelay: PT0.05S}",
        )
    )
    events = [
        env.event("1", "http.json", {"n": 1}, subject="s/1", color="blue"),
        env.event("2-busy", "http.json", {"n": 2}),
        # No data: a record without value, so it needs a key (aiokafka refuses neither).
        env.event("3", "http.nodata", partitionkey="k3"),
        env.event("4", "other.type", {"n": 4}),
    ]
    await env.produce(topic, events)
    await finished(runtime, ns, len(events))

    by_id: dict[str, Requests] = collections.defaultdict(list)
    for headers, body in requests:
        by_id[headers["ce-id"]].append((headers, body))
    assert sorted(by_id) == [f"{ns}-1", f"{ns}-2-busy", f"{ns}-3"]
    assert len(by_id[f"{ns}-2-busy"]) == 2  # 503, then retried
    headers, body = by_id[f"{ns}-1"][0]
    ce = {k: v for k, v in headers.items() if k.startswith("ce-")}
    assert ce.pop("ce-knativearrivaltime")  # stamped by the broker's ingress
    assert ce == {
        "ce-specversion": "1.0",
        "ce-id": f"{ns}-1",
        "ce-source": "/knray/tests",
        "ce-type": "http.json",
        "ce-subject": "s/1",
        "ce-testrun": ns,
        "ce-color": "blue",
    }
    assert headers["content-type"] == "application/json"
    assert body == b'{"n":1}'
    headers, body = by_id[f"{ns}-3"][0]
    assert "content-type" not in headers
    assert body == b""
    counters = trigger_counters(runtime, ns, "to-http")
    assert (counters["delivered"], counters["retries"]) == (3, 1)


# --- 6. faults: a consumer actor and a Serve replica killed mid-stream ------------------------


def _wait_dead(handle: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get(handle.ready.remote(), timeout=5)
        except ray.exceptions.RayActorError:
            return
    raise AssertionError("the killed actor still answers")


async def _every_event_received(env: Env, events: list[CloudEvent]) -> int:
    """Wait until the subscriber received exactly the ids of ``events``; the duplicates."""
    expected = {ev.get_id() for ev in events}
    await eventually(
        lambda: set(env.ids("received")) >= expected,
        lambda: f"{len(expected - set(env.ids('received')))} events never delivered",
        timeout_s=90,
    )
    received = env.ids("received")
    assert set(received) == expected
    return len(received) - len(events)


async def test_killing_a_consumer_actor_mid_stream_loses_nothing(
    env: Env, record_property: Callable[[str, object], None]
) -> None:
    ns = env.ns
    topic = await env.topic(partitions=3)
    runtime = await env.apply(
        source_yaml(ns, topic, env.bootstrap, consumers=2)
        + service_yaml(ns, "sink", "record_batch")
        + trigger_yaml(ns, "all", "sink")
    )
    count = 12_000
    events = [env.event(str(i), "load", {"i": i}, partitionkey=f"k{i % 31}") for i in range(count)]
    producing = asyncio.create_task(
        produce_events(env.bootstrap, [(topic, ev) for ev in events], rate_per_s=3000)
    )
    await eventually(lambda: len(env.ids("received")) >= 2_000, "2,000 events before the kill")
    name = source_actor_name(f"KafkaSource/{ns}/source", 0)
    victim = ray.get_actor(name, namespace=RAY_NAMESPACE)
    ray.kill(victim)
    at_kill = len(env.ids("received"))
    await asyncio.to_thread(_wait_dead, victim)
    assert await asyncio.to_thread(runtime.heal) == [name]
    assert await producing == count

    duplicates = await _every_event_received(env, events)
    record_property("duplicates", duplicates)
    print(f"\nconsumer kill: {duplicates} duplicates of {count} ({at_kill} delivered at the kill)")


async def test_killing_a_dispatcher_actor_mid_stream_loses_nothing(
    env: Env, record_property: Callable[[str, object], None]
) -> None:
    ns = env.ns
    topic = await env.topic(partitions=2)
    runtime = await env.apply(
        source_yaml(ns, topic, env.bootstrap)
        + service_yaml(ns, "sink", "record_batch")
        + trigger_yaml(ns, "all", "sink")
    )
    count = 6_000
    events = [env.event(str(i), "load", {"i": i}) for i in range(count)]
    producing = asyncio.create_task(
        produce_events(env.bootstrap, [(topic, ev) for ev in events], rate_per_s=3000)
    )
    await eventually(lambda: len(env.ids("received")) >= 1_000, "1,000 events before the kill")
    name = broker_actor_name(f"{ns}/default", 0)
    victim = ray.get_actor(name, namespace=RAY_NAMESPACE)
    ray.kill(victim)
    await asyncio.to_thread(_wait_dead, victim)
    # The consumer's batches on the dead dispatcher come back failed and are sent again.
    assert await asyncio.to_thread(runtime.heal) == [name]
    assert await producing == count

    duplicates = await _every_event_received(env, events)
    record_property("duplicates", duplicates)
    print(f"\ndispatcher kill: {duplicates} duplicates of {count}")


def _replicas(app: str) -> list[str]:
    return [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == "serve" and actor["name"].startswith(f"SERVE_REPLICA::{app}#")
    ]


async def test_killing_a_serve_replica_mid_stream_loses_nothing(
    env: Env, record_property: Callable[[str, object], None]
) -> None:
    ns = env.ns
    topic = await env.topic(partitions=3)
    delivery = """
        delivery:
          retry: 6
          backoffPolicy: exponential
          backoffDelay: PT0.5S
          timeout: PT20S
          deadLetterSink:
            ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: dead-letters}
        """
    runtime = await env.apply(
        source_yaml(ns, topic, env.bootstrap)
        + service_yaml(ns, "sink", "record_batch")
        + service_yaml(ns, "dead-letters", "dead_letters")
        + trigger_yaml(ns, "all", "sink", delivery=delivery)
    )
    app = f"{ns}.sink"
    await eventually(lambda: _replicas(app), "the sink's replica is running")
    count = 10_000
    events = [env.event(str(i), "load", {"i": i}) for i in range(count)]
    producing = asyncio.create_task(
        produce_events(env.bootstrap, [(topic, ev) for ev in events], rate_per_s=2500)
    )
    await eventually(lambda: len(env.ids("received")) >= 2_000, "2,000 events before the kill")
    (replica,) = _replicas(app)
    ray.kill(ray.get_actor(replica, namespace="serve"), no_restart=True)
    at_kill = len(env.ids("received"))
    assert await producing == count

    expected = {ev.get_id() for ev in events}

    def handled() -> set[str]:
        return set(env.ids("received")) | set(env.ids("dead"))

    await eventually(
        lambda: handled() >= expected,
        lambda: f"{len(expected - handled())} events lost; {runtime.status()}",
        timeout_s=120,
    )
    assert handled() == expected
    await eventually(
        lambda: _replicas(app) not in ([], [replica]), "Serve replaced the killed replica"
    )
    dead = env.ids("dead")
    duplicates = len(env.ids("received")) + len(dead) - count
    record_property("duplicates", duplicates)
    record_property("dead_lettered", len(dead))
    print(
        f"\nreplica kill: {duplicates} duplicates, {len(dead)} dead-lettered of {count} "
        f"({at_kill} delivered at the kill)"
    )


# --- 7. the article's manifests -------------------------------------------------------------


def _article(ns: str, topic: str, bootstrap: str) -> list[Resource]:
    """configs/article as published, except: its own namespace, the test topic and group, the
    test broker's address, and the sink pointing at the event-display Service."""
    documents = []
    for path in sorted((REPO / "configs" / "article").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            document["metadata"]["namespace"] = ns
            if document["kind"] == "KafkaSource":
                document["spec"]["topics"] = topic
                document["spec"]["consumerGroup"] = f"{ns}-demo-consumer"
                document["spec"]["sink"] = {
                    "ref": {
                        "apiVersion": "serving.knative.dev/v1",
                        "kind": "Service",
                        "name": "event-display",
                    }
                }
            documents.append(document)
    return override_bootstrap(load(yaml.safe_dump_all(documents)), bootstrap)


def _displayed(wanted: set[str]) -> set[str]:
    """The ids an event-display printed (``  id: <id>``) in this Ray session's logs."""
    node: Any = ray._private.worker._global_node
    logs = Path(node.get_logs_dir_path())
    found: set[str] = set()
    for path in logs.rglob("*"):
        if path.suffix in {".out", ".log", ".err"} and path.is_file():
            text = path.read_text(errors="replace")
            found.update(i for i in wanted if f"  id: {i}\n" in text)
    return found


async def test_article_kafka_source_delivers_to_the_builtin_event_display(env: Env) -> None:
    ns = env.ns
    topic = await env.topic(partitions=1)
    resources = _article(ns, topic, env.bootstrap)
    (source,) = [r for r in resources if isinstance(r, KafkaSource)]
    assert source.spec.bootstrap_servers == [env.bootstrap]
    assert source.spec.initial_offset is InitialOffset.LATEST  # as in the article
    runtime = env.runtime()
    await asyncio.to_thread(runtime.apply, resources)

    # initialOffset latest: records produced before the group's position is set are skipped,
    # so send probes until one arrives; every record after it is read.
    deadline = time.monotonic() + 60
    for probe in itertools.count():
        await env.produce(topic, [env.event(f"probe-{probe}", "probe", {"probe": probe})])
        try:
            await eventually(
                lambda: source_counters(runtime, ns, "kafka-source").get("finished", 0) > 0,
                "a probe reached the event-display",
                timeout_s=1,
            )
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    events = [env.event(str(i), "dev.knative.samples.hello", {"msg": f"hi {i}"}) for i in range(10)]
    await env.produce(topic, events)
    wanted = {ev.get_id() for ev in events}
    await eventually(
        lambda: _displayed(wanted) == wanted,
        lambda: f"event-display printed {len(_displayed(wanted))} of {len(wanted)} events",
    )
    # The handler prints before its answer travels back to the source: wait for the outcomes.
    await eventually(
        lambda: source_counters(runtime, ns, "kafka-source").get("finished", 0) >= len(events) + 1,
        "the source recorded every outcome",
    )
    counters = source_counters(runtime, ns, "kafka-source")
    assert counters.get("failed", 0) == 0
    assert runtime.status()["services"][f"{ns}/event-display"]["replicas"] >= 1

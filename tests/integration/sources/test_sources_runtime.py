"""Sources run by ``Runtime`` on a real local Ray: a PingSource on a fast clock delivering
through a Broker and Trigger, and a RabbitMQ, a Redis Streams and a NATS JetStream source
whose consumer actor is killed mid-stream (the runtime heals it; nothing is lost).
Subscribers are real HTTP servers on loopback; the servers are the machine's own."""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import aio_pika
import nats
import pytest
import ray
import redis.asyncio as redis
from aiohttp import web

from knray.errors import ManifestWarning
from knray.manifests import Resource, parse_manifests
from knray.runtime import Runtime
from knray.runtime.names import RAY_NAMESPACE, source_actor_name
from knray.sources.ping import ScaledClock
from tests.integration.sources.support import require_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class HttpRecorder:
    """An HTTP subscriber on loopback recording the CloudEvents headers it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.received.append({k.lower(): v for k, v in request.headers.items()})
        return web.Response(status=202)


@pytest.fixture
async def http_sink() -> AsyncIterator[HttpRecorder]:
    recorder = HttpRecorder()
    app = web.Application()
    app.router.add_post("/", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    recorder.url = f"http://127.0.0.1:{port}/"
    yield recorder
    await runner.cleanup()


def load(text: str) -> list[Resource]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        return list(parse_manifests(text).resources)


async def eventually(check: Callable[[], Any], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.1)


async def test_ping_source_fires_each_minute_of_a_fast_clock_through_a_trigger(
    runtimes: list[Runtime], http_sink: HttpRecorder
) -> None:
    ns = f"ping-{uuid.uuid4().hex[:8]}"
    manifests = f"""
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default, namespace: {ns}}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: pings, namespace: {ns}}}
spec:
  broker: default
  filter: {{attributes: {{type: dev.knative.sources.ping}}}}
  subscriber: {{uri: "{http_sink.url}"}}
---
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {{name: heartbeat, namespace: {ns}}}
spec:
  schedule: "*/1 * * * *"
  contentType: application/json
  data: '{{"beat": true}}'
  sink:
    ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
"""
    # One simulated minute per real second: */1 fires about every second.
    runtime = Runtime(source_options={"PingSource": {"clock": ScaledClock.starting_now(60)}})
    runtimes.append(runtime)
    await asyncio.to_thread(runtime.apply, load(manifests))
    await eventually(lambda: len(http_sink.received) >= 3, "three pings")

    # Killed, the one scheduler is replaced; it never sends a tick again.
    actor = ray.get_actor(source_actor_name(f"PingSource/{ns}/heartbeat", 0), RAY_NAMESPACE)
    ray.kill(actor)
    await eventually(lambda: bool(runtime.heal()), "the scheduler replaced", 30)
    seen = len(http_sink.received)
    await eventually(lambda: len(http_sink.received) >= seen + 2, "pings after the restart")
    runtime.shutdown()
    runtimes.remove(runtime)

    headers = http_sink.received
    assert {h["ce-type"] for h in headers} == {"dev.knative.sources.ping"}
    assert {h["ce-source"] for h in headers} == {f"/apis/v1/namespaces/{ns}/pingsources/heartbeat"}
    assert {h["content-type"] for h in headers} == {"application/json"}
    times = [datetime.fromisoformat(h["ce-time"].replace("Z", "+00:00")) for h in headers]
    assert all(t.second == 0 and t.microsecond == 0 for t in times)  # on minute boundaries
    # One event per tick: no tick twice, and no id twice.
    assert len(set(times)) == len(times)
    assert len({h["ce-id"] for h in headers}) == len(headers)


async def test_killing_a_redis_stream_consumer_actor_loses_nothing(
    runtimes: list[Runtime], http_sink: HttpRecorder
) -> None:
    require_server("127.0.0.1", 6379, "Redis")
    ns = f"redis-{uuid.uuid4().hex[:8]}"
    stream = f"knray-test-{ns}"
    client = redis.Redis.from_url("redis://127.0.0.1:6379")
    manifests = f"""
apiVersion: sources.knative.dev/v1alpha1
kind: RedisStreamSource
metadata: {{name: orders, namespace: {ns}}}
spec:
  address: 127.0.0.1:6379
  stream: {stream}
  sink: {{uri: "{http_sink.url}"}}
"""
    runtime = Runtime(source_options={"RedisStreamSource": {"batch_size": 50}})
    runtimes.append(runtime)
    try:
        # The group the source uses, created first so no entry predates it.
        await client.xgroup_create(stream, f"knray.{ns}.orders", id="$", mkstream=True)
        await asyncio.to_thread(runtime.apply, load(manifests))
        count = 2000
        async with client.pipeline(transaction=False) as pipe:
            for i in range(count):
                pipe.xadd(stream, {"n": str(i)})
            ids = [i.decode() for i in await pipe.execute()]
        await kill_mid_stream(runtime, http_sink, f"RedisStreamSource/{ns}/orders", ids)
    finally:
        await client.delete(stream)
        await client.aclose()


async def kill_mid_stream(
    runtime: Runtime,
    http_sink: HttpRecorder,
    source_key: str,
    ids: list[str],
) -> None:
    """Kill the source's consumer actor once a quarter arrived; the runtime heals it; every
    id must arrive (duplicates allowed and reported)."""
    count = len(ids)
    await eventually(lambda: len(http_sink.received) >= count // 4, "a quarter delivered")
    ray.kill(ray.get_actor(source_actor_name(source_key, 0), RAY_NAMESPACE))
    at_kill = len(http_sink.received)
    assert at_kill < count
    await eventually(lambda: bool(runtime.heal()), "the consumer replaced", 30)
    await eventually(
        lambda: {h["ce-id"] for h in http_sink.received} >= set(ids), "every message", 90
    )
    seen = Counter(h["ce-id"] for h in http_sink.received)
    print(
        f"\n{source_key} actor kill: {sum(seen.values()) - count} duplicates of {count}"
        f" ({at_kill} delivered at the kill)"
    )
    assert set(seen) == set(ids)


async def test_killing_a_rabbitmq_consumer_actor_loses_nothing(
    runtimes: list[Runtime], http_sink: HttpRecorder
) -> None:
    require_server("127.0.0.1", 5672, "RabbitMQ")
    ns = f"rabbit-{uuid.uuid4().hex[:8]}"
    queue = f"knray-test-{ns}"
    manifests = f"""
apiVersion: sources.knative.dev/v1alpha1
kind: RabbitmqSource
metadata: {{name: orders, namespace: {ns}}}
spec:
  rabbitmqClusterReference: {{name: 127.0.0.1}}
  rabbitmqResourcesConfig: {{queueName: {queue}, predeclared: true, parallelism: 100}}
  sink: {{uri: "{http_sink.url}"}}
"""
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        count = 2000
        ids = [f"{ns}-{i}" for i in range(count)]
        for message_id in ids:
            await channel.default_exchange.publish(
                aio_pika.Message(b"{}", message_id=message_id), routing_key=queue
            )
        runtime = Runtime(source_options={"RabbitmqSource": {"batch_size": 50}})
        runtimes.append(runtime)
        await asyncio.to_thread(runtime.apply, load(manifests))
        await kill_mid_stream(runtime, http_sink, f"RabbitmqSource/{ns}/orders", ids)
    finally:
        await channel.queue_delete(queue)
        await connection.close()


async def test_killing_a_nats_consumer_actor_loses_nothing(
    runtimes: list[Runtime], http_sink: HttpRecorder
) -> None:
    require_server("127.0.0.1", 4222, "NATS")
    ns = f"nats-{uuid.uuid4().hex[:8]}"
    stream = f"knray-test-{ns}"
    manifests = f"""
apiVersion: sources.knray.dev/v1alpha1
kind: NatsJetStreamSource
metadata: {{name: orders, namespace: {ns}}}
spec:
  servers: ["nats://127.0.0.1:4222"]
  stream: {stream}
  ackWait: PT2S
  sink: {{uri: "{http_sink.url}"}}
"""
    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    try:
        count = 2000
        for i in range(count):
            await js.publish(f"{stream}.orders", str(i).encode())
        ids = [f"{stream}:{sequence}" for sequence in range(1, count + 1)]
        runtime = Runtime(source_options={"NatsJetStreamSource": {"batch_size": 50}})
        runtimes.append(runtime)
        await asyncio.to_thread(runtime.apply, load(manifests))
        await kill_mid_stream(runtime, http_sink, f"NatsJetStreamSource/{ns}/orders", ids)
    finally:
        await js.delete_stream(stream)
        await nc.close()

"""Sources run by ``Runtime`` on a real local Ray: a PingSource on a fast clock delivering
through a Broker and Trigger, and a RedisStreamSource whose consumer actor is killed
mid-stream. Subscribers are real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

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


@pytest.fixture
def runtimes(ray_local: None) -> Any:
    started: list[Runtime] = []
    yield started
    for runtime in started:
        runtime.shutdown(drain=False)


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
        await eventually(lambda: len(http_sink.received) >= count // 4, "a quarter delivered")
        ray.kill(
            ray.get_actor(source_actor_name(f"RedisStreamSource/{ns}/orders", 0), RAY_NAMESPACE)
        )
        at_kill = len(http_sink.received)
        await eventually(lambda: bool(runtime.heal()), "the consumer replaced", 30)
        await eventually(
            lambda: {h["ce-id"] for h in http_sink.received} >= set(ids), "every entry", 90
        )
    finally:
        await client.delete(stream)
        await client.aclose()
    seen = Counter(h["ce-id"] for h in http_sink.received)
    duplicates = sum(seen.values()) - count
    print(
        f"\nRedis consumer actor kill: {duplicates} duplicates of {count} ({at_kill} at the kill)"
    )
    assert set(seen) == set(ids)

"""RedisStreamSource consumer against the machine's Redis (127.0.0.1:6379)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis

from knray.events import CloudEvent
from knray.events.kafka import to_kafka_binary
from knray.manifests import RedisStreamSource
from knray.sources.redis_streams import EVENT_TYPE, consumer
from tests.integration.sources.support import (
    RecordingSink,
    require_server,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ADDRESS = "127.0.0.1:6379"


@pytest.fixture
async def stream() -> AsyncIterator[str]:
    """A fresh stream name; the stream (and its groups) is deleted afterwards."""
    require_server("127.0.0.1", 6379, "Redis")
    name = f"knray-test-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(f"redis://{ADDRESS}")
    await client.delete(name)
    await client.aclose()


def make_source(stream: str, group: str = "") -> RedisStreamSource:
    return RedisStreamSource.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1alpha1",
            "kind": "RedisStreamSource",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {
                "address": ADDRESS,
                "stream": stream,
                "group": group,
                "ceOverrides": {"extensions": {"team": "shop"}},
                "sink": {"uri": "http://sink.example/"},
            },
        }
    )


async def add(stream: str, entries: list[dict[str, Any]]) -> list[str]:
    client = redis.Redis.from_url(f"redis://{ADDRESS}")
    try:
        async with client.pipeline(transaction=False) as pipe:
            for fields in entries:
                pipe.xadd(stream, fields)
            ids = await pipe.execute()
    finally:
        await client.aclose()
    return [i.decode() for i in ids]


async def test_entries_become_events_and_are_acked(stream: str) -> None:
    source = make_source(stream)
    sink = RecordingSink()
    running = consumer(source, sink, 0, {})
    task = asyncio.create_task(running.run())
    await wait_until(lambda: running.client._redis is not None, 10, "the group")
    await asyncio.sleep(0.2)  # the group exists (created at "$": entries from now on)
    cloud = CloudEvent(
        {"specversion": "1.0", "id": "ce-1", "source": "/app", "type": "t.x"}, {"n": 2}
    )
    record = to_kafka_binary(cloud)
    ids = await add(
        stream,
        [
            {"user": "ada", "text": "hello"},
            {**dict(record.headers), "data": record.value or b""},
        ],
    )
    await wait_until(lambda: len(sink.events) == 2, 30, "two events")
    await running.stop()
    await task

    plain, passed = sink.events
    assert plain.get_attributes() == {
        "specversion": "1.0",
        "id": ids[0],
        "source": f"{ADDRESS}/{stream}",
        "type": EVENT_TYPE,
        "datacontenttype": "application/json",
        "team": "shop",
    }
    assert plain.get_data() == ["user", "ada", "text", "hello"]
    assert passed.get_attributes() == {**cloud.get_attributes(), "team": "shop"}
    assert passed.get_data() == {"n": 2}
    client = redis.Redis.from_url(f"redis://{ADDRESS}")
    pending = await client.xpending(stream, source.consumer_group)
    await client.aclose()
    assert pending["pending"] == 0  # both XACKed


async def test_entries_of_a_member_that_never_returns_are_claimed(stream: str) -> None:
    source = make_source(stream, group=f"g-{uuid.uuid4().hex[:6]}")
    client = redis.Redis.from_url(f"redis://{ADDRESS}")
    await client.xgroup_create(stream, source.consumer_group, id="$", mkstream=True)
    await add(stream, [{"n": str(i)} for i in range(10)])
    # Member 5 read the entries and vanished without XACK.
    await client.xreadgroup(source.consumer_group, f"{source.consumer_group}-5", {stream: ">"})
    await client.aclose()
    sink = RecordingSink()
    running = consumer(source, sink, 0, {"claim_idle_s": 0.05})
    task = asyncio.create_task(running.run())
    await wait_until(lambda: len(sink.events) == 10, 30, "the claimed entries")
    await running.stop()
    await task
    assert sorted(json.loads(e.encoded_data())[1] for e in sink.events) == sorted(
        str(i) for i in range(10)
    )

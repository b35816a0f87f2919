"""NatsJetStreamSource consumer against the machine's NATS with JetStream (127.0.0.1:4222)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import nats
import pytest

from knray.events import CloudEvent
from knray.events.http import to_http_binary
from knray.manifests import NatsJetStreamSource
from knray.sources.nats_jetstream import EVENT_TYPE, consumer
from tests.integration.sources.support import (
    RecordingSink,
    require_server,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERVER = "nats://127.0.0.1:4222"


@pytest.fixture
async def stream() -> AsyncIterator[str]:
    """A fresh stream on subjects ``<stream>.>``, deleted afterwards."""
    require_server("127.0.0.1", 4222, "NATS")
    name = f"knray-test-{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(SERVER)
    js = nc.jetstream()
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    yield name
    await js.delete_stream(name)
    await nc.close()


def make_source(stream: str, ack_wait: str = "PT30S") -> NatsJetStreamSource:
    return NatsJetStreamSource.model_validate(
        {
            "apiVersion": "sources.knray.dev/v1alpha1",
            "kind": "NatsJetStreamSource",
            "metadata": {"name": f"orders-{uuid.uuid4().hex[:6]}", "namespace": "shop"},
            "spec": {
                "servers": [SERVER],
                "stream": stream,
                "subject": f"{stream}.orders",
                "ackWait": ack_wait,
                "ceOverrides": {"extensions": {"team": "shop"}},
                "sink": {"uri": "http://sink.example/"},
            },
        }
    )


async def publish(subject: str, messages: list[tuple[bytes, dict[str, str] | None]]) -> None:
    nc = await nats.connect(SERVER)
    js = nc.jetstream()
    for payload, headers in messages:
        await js.publish(subject, payload, headers=headers)
    await nc.close()


async def test_messages_become_events_and_are_acked(stream: str) -> None:
    cloud = CloudEvent(
        {"specversion": "1.0", "id": "ce-1", "source": "/app", "type": "t.x"}, {"n": 2}
    )
    headers, body = to_http_binary(cloud)  # the NATS binding's headers are HTTP's: ce-*
    await publish(
        f"{stream}.orders",
        [(b'{"n": 1}', {"Content-Type": "application/json"}), (body, headers)],
    )
    await publish(f"{stream}.other", [(b"not for this source", None)])
    sink = RecordingSink()
    source = make_source(stream)
    running = consumer(source, sink, 0, {})
    task = asyncio.create_task(running.run())
    await wait_until(lambda: len(sink.events) == 2, 30, "two events")
    await asyncio.sleep(0.3)  # nothing else arrives (the filter subject holds)
    await running.stop()
    await task

    plain, passed = sink.events
    time = plain.get_attributes().pop("time")
    assert time.endswith("Z")
    assert {k: v for k, v in plain.get_attributes().items() if k != "time"} == {
        "specversion": "1.0",
        "id": f"{stream}:1",
        "source": f"/apis/v1/namespaces/shop/natsjetstreamsources/{source.name}#{stream}",
        "type": EVENT_TYPE,
        "subject": f"{stream}.orders",
        "datacontenttype": "application/json",
        "team": "shop",
    }
    assert plain.get_data() == {"n": 1}
    assert passed.get_attributes() == {**cloud.get_attributes(), "team": "shop"}
    assert running.stats()["acked"] == 2
    assert len(sink.events) == 2

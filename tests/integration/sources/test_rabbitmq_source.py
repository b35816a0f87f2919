"""RabbitmqSource consumer against the machine's RabbitMQ (127.0.0.1:5672, guest/guest)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from knray.events import CloudEvent
from knray.manifests import RabbitmqSource
from knray.sources.acking import AckingConsumer
from knray.sources.rabbitmq import EVENT_TYPE, consumer
from tests.integration.sources.support import (
    RecordingSink,
    require_server,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
async def names() -> AsyncIterator[tuple[str, str]]:
    """A fresh queue and exchange name; both are deleted afterwards."""
    require_server("127.0.0.1", 5672, "RabbitMQ")
    suffix = uuid.uuid4().hex[:8]
    queue, exchange = f"knray-test-{suffix}", f"knray-test-x-{suffix}"
    yield queue, exchange
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)


def make_source(queue: str, exchange: str, parallelism: int = 1) -> RabbitmqSource:
    return RabbitmqSource.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1alpha1",
            "kind": "RabbitmqSource",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {
                "rabbitmqClusterReference": {"name": "127.0.0.1"},
                "rabbitmqResourcesConfig": {
                    "queueName": queue,
                    "exchangeName": exchange,
                    "parallelism": parallelism,
                },
                "ceOverrides": {"extensions": {"team": "shop"}},
                "sink": {"uri": "http://sink.example/"},
            },
        }
    )


async def publish(exchange: str, messages: list[aio_pika.Message]) -> None:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange)
        for message in messages:
            await target.publish(message, routing_key="orders.created")


async def start(
    source: RabbitmqSource, sink: RecordingSink, **options: Any
) -> tuple[AckingConsumer[Any], asyncio.Task[None]]:
    running = consumer(source, sink, 0, options)
    task = asyncio.create_task(running.run())
    # The queue and its binding exist once the consumer is connected.
    await wait_until(lambda: running.client._queue is not None, 30, "the consumer to connect")
    return running, task


async def test_messages_become_events_in_queue_order(names: tuple[str, str]) -> None:
    queue, exchange = names
    source = make_source(queue, exchange)
    sink = RecordingSink()
    running, task = await start(source, sink)
    cloud = CloudEvent({"specversion": "1.0", "id": "ce-1", "source": "/app", "type": "t.x"})
    await publish(
        exchange,
        [
            aio_pika.Message(b'{"n": 1}', content_type="application/json", message_id="m-1"),
            aio_pika.Message(b"plain"),
            aio_pika.Message(
                b'{"n": 3}',
                content_type="application/json",
                headers={f"ce-{k}": v for k, v in cloud.get_attributes().items()},
            ),
        ],
    )
    await wait_until(lambda: len(sink.events) == 3, 30, "three events")
    await running.stop()
    await task

    first, second, third = sink.events
    assert first.get_attributes() == {
        "specversion": "1.0",
        "id": "m-1",
        "source": f"/apis/v1/namespaces/shop/rabbitmqsources/orders#{queue}",
        "type": EVENT_TYPE,
        "datacontenttype": "application/json",
        "team": "shop",
    }
    assert first.get_data() == {"n": 1}
    assert second.get_type() == EVENT_TYPE
    assert second.get_id()
    assert second.encoded_data() == b"plain"
    # A CloudEvent in binary mode passes through, content type included, plus ceOverrides.
    assert third.get_attributes() == {
        **cloud.get_attributes(),
        "datacontenttype": "application/json",
        "team": "shop",
    }
    assert running.stats()["acked"] == 3


async def test_a_failed_outcome_is_retried_and_acked_only_when_finished(
    names: tuple[str, str],
) -> None:
    queue, exchange = names
    failures = {"left": 3}

    def fail(event: CloudEvent) -> bool:
        if event.encoded_data() == b"flaky" and failures["left"] > 0:
            failures["left"] -= 1
            return True
        return False

    sink = RecordingSink(fail=fail)
    running, task = await start(make_source(queue, exchange), sink, retry_backoff_s=0.01)
    await publish(exchange, [aio_pika.Message(b"flaky"), aio_pika.Message(b"next")])
    await wait_until(lambda: len(sink.events) == 2, 30, "both events")
    await running.stop()
    await task
    # parallelism 1: "next" waits for "flaky" to finish (queue order, one at a time).
    assert sink.data() == ["flaky", "next"]
    assert running.stats()["failed"] == 3
    assert running.stats()["acked"] == 2

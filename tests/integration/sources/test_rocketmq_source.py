"""RocketMQSource against a real Apache RocketMQ 5 (NameServer, Broker, cluster-mode Proxy),
started once for this module by ``knray.testing.rocketmq`` from jars fetched from Maven Central.

Consumers talk gRPC to the Proxy through Apache's Python client, as in production; test
messages are published over the Broker's remoting protocol, one also with Apache's gRPC
Producer. The test server lowers the Proxy's minimum invisible duration (10 s) and receive
long-poll (5 s) to 1 s so that redelivery and stopping take seconds; the mapping and
`knray run` tests keep the consumer's defaults (30 s invisible, 5 s long-poll).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import rocketmq

from knray.events import CloudEvent, to_json
from knray.manifests import RocketMQSource
from knray.runtime import Runtime
from knray.sources.rocketmq import EVENT_TYPE, KEYS_EXTENSION, consumer
from knray.testing.process import ServerStartError
from knray.testing.rocketmq import Message, RocketMQServer, start_rocketmq
from tests.integration.cli.user_project import RECORDING_HANDLER, knray_env, wait_for_received
from tests.integration.sources.support import RecordingSink, wait_until
from tests.integration.sources.test_sources_runtime import (  # noqa: F401 - fixtures
    HttpRecorder,
    http_sink,
    kill_mid_stream,
    load,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[3]
SHORT_S = 2  # invisible duration of the redelivery tests
# Receives that return within 1 s when idle (the test server allows it): stopping is quick.
FAST: dict[str, Any] = {"await_duration_s": 1}
KNRAY_RUN = [sys.executable, "-m", "knray.cli", "run"]


@pytest.fixture(scope="module")
def server() -> Iterator[RocketMQServer]:
    """One RocketMQ for the module; a server that cannot start fails the tests."""
    try:
        started = start_rocketmq()
    except ServerStartError as error:
        pytest.fail(f"RocketMQ did not start: {error}")
    print(f"\nRocketMQ {started.version} started in {started.startup_s:.1f} s")
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def record_server(request: pytest.FixtureRequest, server: RocketMQServer) -> None:
    """Note on each report that it ran on the real server (summed up at the end of the run)."""
    request.node.user_properties.append(("server", f"Apache RocketMQ {server.version}"))


@pytest.fixture
def topic(server: RocketMQServer) -> tuple[str, str]:
    """A fresh topic and consumer group."""
    name = f"knray-{uuid.uuid4().hex[:8]}"
    server.create_topic(name)
    server.create_consumer_group(f"{name}-group")
    return name, f"{name}-group"


def make_source(server: RocketMQServer, topic: str, group: str) -> RocketMQSource:
    return RocketMQSource.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1alpha1",
            "kind": "RocketMQSource",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {
                "topic": topic,
                "namesrvAddr": server.endpoint,
                "groupName": group,
                "ceOverrides": {"extensions": {"team": "shop"}},
                "sink": {"uri": "http://sink.example/"},
            },
        }
    )


def epoch_ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def publish_with_grpc(server: RocketMQServer, topic: str) -> str:
    """One message through Apache's gRPC Producer (the v5 client's ids and born time)."""
    producer = rocketmq.Producer(
        rocketmq.ClientConfiguration(server.endpoint, rocketmq.Credentials()), (topic,)
    )
    producer.startup()
    try:
        message = rocketmq.Message()
        message.topic = topic
        message.body = b"by grpc"
        message.tag = "grpc"
        message.keys = "g-1"
        message.add_property("origin", "grpc")
        return str(producer.send(message).message_id)
    finally:
        producer.shutdown()


async def test_messages_become_events_and_are_acked(
    server: RocketMQServer, topic: tuple[str, str]
) -> None:
    name, group = topic
    attributes = {"specversion": "1.0", "id": "ce-1", "source": "/app", "type": "t.x"}
    cloud = CloudEvent(
        {**attributes, "datacontenttype": "application/json", "trace": "t-9"}, {"n": 2}
    )
    before_ms = int(time.time() * 1000)
    plain_id, binary_id, structured_id = server.send_messages(
        name,
        [
            Message(
                b'{"n": 1}',
                tag="paid",
                keys=("order-7", "customer-2"),
                properties={"content-type": "application/json", "Region": "eu"},
            ),
            # Binary mode as the CloudEvents Java SDK writes it (CE_contenttype).
            Message(
                json.dumps({"n": 2}),
                properties={
                    **{f"CE_{k}": v for k, v in attributes.items()},
                    "CE_trace": "t-9",
                    "CE_contenttype": "application/json",
                },
            ),
            Message(
                to_json(cloud),
                properties={"CE_contenttype": "application/cloudevents+json; charset=UTF-8"},
            ),
        ],
    )
    after_ms = int(time.time() * 1000)
    grpc_id = await asyncio.to_thread(publish_with_grpc, server, name)
    sink = RecordingSink()
    running = consumer(make_source(server, name, group), sink, 0, {})
    task = asyncio.create_task(running.run())
    await wait_until(lambda: len(sink.events) == 4, 60, "four events")
    await wait_until(lambda: running.stats()["acked"] == 4, 30, "four acks")
    await running.stop()
    await task

    events = {event.get_id(): event for event in sink.events}
    plain = events[plain_id].get_attributes()
    assert before_ms <= epoch_ms(plain.pop("time")) <= after_ms  # the born timestamp
    assert plain == {
        "specversion": "1.0",
        "id": plain_id,
        "source": name,
        "type": EVENT_TYPE,
        "subject": "paid",
        KEYS_EXTENSION: "customer-2 order-7",
        "rocketmqpropertyregion": "eu",
        "datacontenttype": "application/json",
        "team": "shop",
    }
    assert events[plain_id].get_data() == {"n": 1}
    # Both content modes pass the event through (ceOverrides still apply); the message ids
    # are not the events' ids.
    assert binary_id not in events
    assert structured_id not in events
    passed = [e for e in sink.events if e.get_id() == "ce-1"]
    assert len(passed) == 2
    for event in passed:
        assert event.get_attributes() == {**cloud.get_attributes(), "team": "shop"}
        assert event.get_data() == {"n": 2}
    grpc = events[grpc_id].get_attributes()
    assert (grpc["subject"], grpc[KEYS_EXTENSION], grpc["rocketmqpropertyorigin"]) == (
        "grpc",
        "g-1",
        "grpc",
    )
    assert grpc["time"].endswith("Z")
    assert running.stats()["acked"] == 4
    assert len(sink.events) == 4


async def test_acks_only_finished_outcomes_and_extends_the_rest(
    server: RocketMQServer, topic: tuple[str, str]
) -> None:
    """Held or failed events are not acknowledged and their invisibility is extended: another
    member of the group gets nothing, long past the invisible duration. A failed event is
    delivered again until it is finished; once acknowledged, nothing comes back."""
    name, group = topic
    ids = server.send_messages(name, [str(i).encode() for i in range(20)])
    failed_once: set[str] = set()

    def fail_first_attempt(event: CloudEvent) -> bool:
        if event.get_id() in failed_once:
            return False
        failed_once.add(event.get_id())
        return event.get_id() in ids[:5]

    gate = asyncio.Event()
    held = RecordingSink(gate=gate, gate_after=0, fail=fail_first_attempt)
    options: dict[str, Any] = {**FAST, "invisible_duration_s": SHORT_S, "batch_size": 10}
    holder = consumer(make_source(server, name, group), held, 0, options)
    tasks = [asyncio.create_task(holder.run())]
    await wait_until(lambda: holder.stats()["in_flight"] == 20, 60, "all 20 held")
    other_sink = RecordingSink()
    other = consumer(make_source(server, name, group), other_sink, 0, options)
    tasks.append(asyncio.create_task(other.run()))
    await asyncio.sleep(3 * SHORT_S + 2)  # several invisible durations, and the revive delay
    assert holder.stats()["acked"] == 0
    assert other_sink.events == []  # the invisibility was extended

    gate.set()
    await wait_until(lambda: holder.stats()["acked"] == 20, 60, "20 acks")
    assert holder.stats()["failed"] == 5  # each failed event was delivered again ...
    assert sorted(held.data(), key=int) == [str(i) for i in range(20)]  # ... and once only
    await asyncio.sleep(SHORT_S + 2)
    await asyncio.gather(holder.stop(), other.stop())
    await asyncio.gather(*tasks)
    assert other_sink.events == []  # acknowledged messages never come back
    assert len(held.events) == 20


async def test_messages_a_dead_consumer_held_come_back(
    server: RocketMQServer, topic: tuple[str, str]
) -> None:
    """A consumer that dies without acknowledging: its messages go to the next member once
    their invisible duration ends; none is lost."""
    name, group = topic
    ids = server.send_messages(name, [f"m{i}".encode() for i in range(30)])
    stuck = RecordingSink(gate=asyncio.Event(), gate_after=0)  # never lets go
    options: dict[str, Any] = {**FAST, "invisible_duration_s": SHORT_S}
    victim = consumer(make_source(server, name, group), stuck, 0, options)
    victim_task = asyncio.create_task(victim.run())
    await wait_until(lambda: victim.stats()["in_flight"] == 30, 60, "30 received")
    victim_task.cancel()  # dies: no ack, no more lease extensions
    await asyncio.gather(victim_task, return_exceptions=True)

    sink = RecordingSink()
    successor = consumer(make_source(server, name, group), sink, 0, options)
    task = asyncio.create_task(successor.run())
    await wait_until(lambda: {e.get_id() for e in sink.events} >= set(ids), 60, "all 30 back")
    await successor.stop()
    await task
    assert stuck.events == []
    print(f"\nredelivered after a consumer died: {len(sink.events)} events for {len(ids)}")
    assert sorted(e.get_id() for e in sink.events) == sorted(ids)


async def test_killing_a_rocketmq_consumer_actor_loses_nothing(
    server: RocketMQServer,
    topic: tuple[str, str],
    runtimes: list[Runtime],
    http_sink: HttpRecorder,  # noqa: F811 - the fixture
) -> None:
    name, group = topic
    ns = f"rmq-{uuid.uuid4().hex[:8]}"
    manifests = f"""
apiVersion: sources.knative.dev/v1alpha1
kind: RocketMQSource
metadata: {{name: orders, namespace: {ns}}}
spec:
  topic: {name}
  namesrvAddr: "{server.endpoint}"
  groupName: {group}
  sink: {{uri: "{http_sink.url}"}}
"""
    ids = server.send_messages(name, [b"{}"] * 1000)
    # Deliveries take well under 5 s, so only the killed actor's messages come back.
    options = {**FAST, "batch_size": 50, "invisible_duration_s": 5}
    runtime = Runtime(source_options={"RocketMQSource": options})
    runtimes.append(runtime)
    await asyncio.to_thread(runtime.apply, load(manifests))
    await kill_mid_stream(runtime, http_sink, f"RocketMQSource/{ns}/orders", ids)


MANIFESTS = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
---
apiVersion: sources.knative.dev/v1alpha1
kind: RocketMQSource
metadata:
  name: orders
spec:
  topic: {topic}
  namesrvAddr: "{endpoint}"
  groupName: {group}
  sink:
    ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: paid
spec:
  broker: default
  filter:
    attributes: {{type: apache.rocketmq, subject: paid}}
  subscriber:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: recorder}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: recorder
spec:
  template:
    metadata:
      annotations:
        knray.dev/handler: myhandlers:record
        autoscaling.knative.dev/min-scale: "1"
"""


async def test_knray_run_delivers_tagged_messages_through_a_trigger(
    server: RocketMQServer, topic: tuple[str, str], tmp_path: Path
) -> None:
    """RocketMQSource -> Broker -> Trigger (on the tag) -> Service, run by `knray run`."""
    name, group = topic
    project = tmp_path / "project"
    project.mkdir()
    (project / "myhandlers.py").write_text(textwrap.dedent(RECORDING_HANDLER))
    manifests = MANIFESTS.format(topic=name, endpoint=server.endpoint, group=group)
    (project / "app.yaml").write_text(manifests)
    received = tmp_path / "received.txt"
    log_path = tmp_path / "run.log"
    messages = [Message(f"order {i}", tag="paid" if i % 2 else "created") for i in range(40)]
    ids = server.send_messages(name, messages)
    expected = {i for i, m in zip(ids, messages, strict=True) if m.tag == "paid"}
    env = knray_env(RECEIVED_FILE=str(received), PYTHONPATH=str(REPO))
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*KNRAY_RUN, "-f", "app.yaml", "--no-status", "--http-port", "-1"],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            await wait_for_received(expected, received, process, log_path)
            process.send_signal(signal.SIGINT)
            code = await asyncio.to_thread(process.wait, 120)
        finally:
            if process.poll() is None:
                process.kill()
    assert code == 0, log_path.read_text()[-3000:]

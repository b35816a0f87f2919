"""The Brokers' HTTP ingress, ``knray send`` and ``knray status`` on a real local Ray.

Real HTTP on loopback both ways: requests to the ingress on a free port, and Triggers
delivering to an HTTP sink served by the test (which can hold its answers to build up
backpressure, or to keep events in flight across a restart). Kafka tests use the session's
Kafka-protocol broker. Tests poll until a deadline; nothing waits on a sleep.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import ray
from aiohttp import web

from knray.cli.main import main
from knray.errors import ManifestWarning
from knray.events import CloudEvent, from_http, to_http_batch, to_http_binary, to_json
from knray.manifests import Resource, parse_manifests
from knray.runtime import Runtime
from knray.runtime.names import INGRESS_ACTOR_NAME, RAY_NAMESPACE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FAST_GROUP = {
    "consumer_options": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500},
    "commit_interval_s": 0.5,
}


class Sink:
    """An HTTP subscriber on loopback recording every event; ``hold()`` makes it keep its
    answers until ``release()``."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.held = 0
        self._open = asyncio.Event()
        self._open.set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"

    async def stop(self) -> None:
        self._open.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self._open.is_set():
            self.held += 1
            try:
                await self._open.wait()
            finally:
                self.held -= 1
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=503)  # the sender is gone: not delivered
        received = from_http(request.headers, body)
        self.events.extend(received)
        if received[0].get_type() == "test.ask":  # answer with a reply event
            answer = CloudEvent(
                {**received[0].get_attributes(), "id": received[0].get_id() + "-answer"}
                | {"type": "test.answer"}
            )
            headers, reply = to_http_binary(answer)
            return web.Response(status=200, headers=headers, body=reply)
        return web.Response(status=202)

    def ids(self) -> list[str]:
        return [event.get_id() for event in self.events]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    server = Sink()
    await server.start()
    yield server
    await server.stop()


def load(text: str) -> list[Resource]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        return list(parse_manifests(text).resources)


def broker_yaml(ns: str, sink_url: str, *, broker_class: str = "", config: str = "") -> str:
    annotations = (
        f"  annotations: {{eventing.knative.dev/broker.class: {broker_class}}}\n"
        if broker_class
        else ""
    )
    return (
        textwrap.dedent(f"""\
        apiVersion: eventing.knative.dev/v1
        kind: Broker
        metadata:
          name: default
          namespace: {ns}
        """)
        + annotations
        + (f"spec:\n  config: {config}\n" if config else "")
        + textwrap.dedent(f"""\
        ---
        apiVersion: eventing.knative.dev/v1
        kind: Trigger
        metadata:
          name: all
          namespace: {ns}
        spec:
          broker: default
          subscriber:
            uri: {sink_url}
        ---
        """)
    )


async def start(runtimes: list[Runtime], manifests: str, **options: Any) -> Runtime:
    runtime = Runtime(http_port=0, consumer_options=FAST_GROUP, **options)
    runtimes.append(runtime)
    await asyncio.to_thread(runtime.apply, load(manifests))
    return runtime


async def eventually(check: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


def event(ns: str, name: str, **extra: Any) -> CloudEvent:
    attributes = {
        "specversion": "1.0",
        "id": f"{ns}-{name}",
        "source": "/knray/tests",
        "type": "test.ingress",
        **extra,
    }
    return CloudEvent(attributes)


async def post(
    url: str, headers: dict[str, str] | None = None, body: bytes = b"", method: str = "POST"
) -> tuple[int, dict[str, str], str]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers or {}, data=body) as response,
    ):
        return response.status, dict(response.headers), await response.text()


async def test_ingress_answers_every_status_code_as_knative(
    runtimes: list[Runtime], sink: Sink
) -> None:
    ns = f"in-{uuid.uuid4().hex[:8]}"
    runtime = await start(
        runtimes, broker_yaml(ns, sink.url), max_body_bytes=2048, ingress_queue_capacity=3
    )
    url = runtime.ingress_addresses[f"{ns}/default"]
    base = url.removesuffix(f"/{ns}/default")
    assert url == f"http://127.0.0.1:{runtime.http_port}/{ns}/default"

    # OPTIONS: the webhook handshake; other methods than POST: 405.
    status, headers, _ = await post(url, method="OPTIONS")
    assert status == 200
    assert headers["WebHook-Allowed-Origin"] == "*"
    assert "POST" in headers["Allow"]
    for method in ("GET", "PUT", "DELETE"):
        assert (await post(url, method=method))[0] == 405, method

    # Binary, structured and batched modes: 202, then delivered with the ingress's stamps.
    headers, body = to_http_binary(event(ns, "binary", knativebrokerttl="5"))
    assert (await post(url, headers, body))[0] == 202
    structured = to_json(event(ns, "structured"))
    ce_json = {"content-type": "application/cloudevents+json"}
    assert (await post(url + "/", ce_json, structured))[0] == 202  # one trailing / is fine
    # (The queue holds 3 events: let these 2 through before sending 2 more.)
    await eventually(lambda: len(sink.events) == 2, "binary and structured events delivered")
    headers, body = to_http_batch([event(ns, "batch-1"), event(ns, "batch-2")])
    assert (await post(url, headers, body))[0] == 202
    expected = {f"{ns}-{n}" for n in ("binary", "structured", "batch-1", "batch-2")}
    await eventually(lambda: set(sink.ids()) == expected, f"{expected} delivered")
    for received in sink.events:
        assert received.get("knativearrivaltime")
        assert "knativebrokerttl" not in received  # removed before the subscriber

    # Paths: / is 404, anything but /<namespace>/<broker> 400, an unknown Broker 404.
    headers, body = to_http_binary(event(ns, "path"))
    assert (await post(base + "/", headers, body))[0] == 404
    assert (await post(url + "/extra", headers, body))[0] == 400
    assert (await post(f"{base}/{ns}", headers, body))[0] == 400
    status, _, text = await post(f"{base}/{ns}/missing", headers, body)
    assert (status, text.strip()) == (404, f"no Broker {ns}/missing")

    # Malformed or invalid events: 400.
    assert (await post(url, ce_json, b"{not json"))[0] == 400
    no_id = {k: v for k, v in to_http_binary(event(ns, "x"))[0].items() if k != "ce-id"}
    assert (await post(url, no_id, b""))[0] == 400
    # knativebrokerttl 1 is 0 after the ingress's decrement: refused as Knative does.
    headers, body = to_http_binary(event(ns, "ttl", knativebrokerttl="1"))
    status, _, text = await post(url, headers, body)
    assert status == 400
    assert "knativebrokerttl" in text

    # A body over the limit: 413, with or without a Content-Length.
    big = CloudEvent(event(ns, "big").get_attributes(), "x" * 4096)
    headers, body = to_http_binary(big)
    assert (await post(url, headers, body))[0] == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * 1024

    async with (
        aiohttp.ClientSession() as session,
        session.post(url, headers=headers, data=chunks()) as response,
    ):
        assert response.status == 413

    # Backpressure: the sink holds its answers, the queue (3 events) fills, then 503.
    sink.hold()
    for i in range(3):
        headers, body = to_http_binary(event(ns, f"held-{i}"))
        assert (await post(url, headers, body))[0] == 202
    headers, body = to_http_binary(event(ns, "refused"))
    status, response_headers, text = await post(url, headers, body)
    assert status == 503
    assert response_headers["Retry-After"] == "1"
    assert "full" in text
    sink.release()
    held = {f"{ns}-held-{i}" for i in range(3)}
    await eventually(lambda: held <= set(sink.ids()), "held events delivered after release")
    await eventually(
        lambda: runtime.status()["brokers"][f"{ns}/default"]["queued"] == 0, "queue drained"
    )
    status, _, _ = await post(url, headers, body)
    assert status == 202
    await eventually(lambda: f"{ns}-refused" in sink.ids(), "the retried event delivered")
    assert f"{ns}-refused" in sink.ids()

    broker = runtime.status()["brokers"][f"{ns}/default"]
    assert broker["address"] == url
    assert broker["responses"]["202"] == 7
    assert broker["responses"]["503"] == 1

    # knray status, from another process, prints the Broker's address and counters.
    address = ray.get_runtime_context().gcs_address
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "knray.cli", "status", "--address", address, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    status_json = json.loads(result.stdout)
    assert status_json["brokers"][f"{ns}/default"]["address"] == url
    assert status_json["triggers"][f"Trigger/{ns}/all"]["delivered"] == len(sink.events)

    # A second ingress on the same port is refused with a clear error.
    other = Runtime(http_port=runtime.http_port)
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{runtime.http_port}"):
        await asyncio.to_thread(other.apply, load(f"{broker_yaml(ns + '-b', sink.url)}"))
    await asyncio.to_thread(other.shutdown, drain=False)
    assert (await post(url, method="OPTIONS"))[0] == 200  # the first one still serves

    # A dead ingress actor is replaced on the same address.
    ray.kill(ray.get_actor(INGRESS_ACTOR_NAME, namespace=RAY_NAMESPACE))
    assert INGRESS_ACTOR_NAME in await asyncio.to_thread(runtime.heal)
    assert runtime.ingress_addresses[f"{ns}/default"] == url
    headers, body = to_http_binary(event(ns, "after-heal"))
    assert (await post(url, headers, body))[0] == 202
    await eventually(lambda: f"{ns}-after-heal" in sink.ids(), "delivered after the heal")


async def send(*argv: str) -> int:
    return await asyncio.to_thread(main, ["send", *argv])


async def test_knray_send_delivers_to_a_trigger(  # noqa: PLR0917 - pytest fixtures
    runtimes: list[Runtime],
    sink: Sink,
    kafka_bootstrap: str,
    kafka_topic: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = f"send-{uuid.uuid4().hex[:8]}"
    topic = await kafka_topic(partitions=1)
    source = textwrap.dedent(f"""\
        apiVersion: sources.knative.dev/v1beta1
        kind: KafkaSource
        metadata:
          name: source
          namespace: {ns}
        spec:
          bootstrapServers: ["{kafka_bootstrap}"]
          topics: ["{topic}"]
          consumerGroup: {ns}-group
          initialOffset: earliest
          sink:
            ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
        ---
        """)
    runtime = await start(runtimes, broker_yaml(ns, sink.url) + source)
    url = runtime.ingress_addresses[f"{ns}/default"]

    # One event from options, in binary mode.
    code = await send(
        "--broker-url", url, "--type", "order.created", "--id", f"{ns}-one",
        "--source", "/shop", "--subject", "o-1", "--data", '{"total": 5}',
        "--extension", "region=eu",
    )  # fmt: skip
    assert code == 0
    one = await eventually(
        lambda: next((e for e in sink.events if e.get_id() == f"{ns}-one"), None), "one event"
    )
    assert one.get_type() == "order.created"
    assert (one.get_source(), one.get_subject()) == ("/shop", "o-1")
    assert one.get("region") == "eu"
    assert one.get("datacontenttype") == "application/json"
    assert one.get_data() == {"total": 5}

    # A file of events, batched, addressed as --broker ns/name on the ingress's port.
    lines = [to_json(event(ns, f"file-{i}")).decode() for i in range(5)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    code = await send(
        "--broker", f"{ns}/default", "--http-port", str(runtime.http_port),
        "--file", str(path), "--mode", "batch", "--batch-size", "2",
    )  # fmt: skip
    assert code == 0
    from_file = {f"{ns}-file-{i}" for i in range(5)}
    await eventually(lambda: from_file <= set(sink.ids()), "the file's events")

    # Bad lines are named by number, and nothing of that file is sent.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        f"{lines[0]}\nnot json\n{lines[1]}\n" + json.dumps({"specversion": "1.0", "id": "x"}) + "\n"
    )
    capsys.readouterr()
    assert await send("--broker-url", url, "--file", str(bad)) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err
    assert f"{bad}:4:" in err
    assert "nothing was sent" in err

    # An unknown Broker is reported with the ingress's answer, exit code 1.
    capsys.readouterr()
    code = await send("--broker-url", url.replace("/default", "/nope"), "--type", "t")
    assert code == 1
    assert "HTTP 404" in capsys.readouterr().err

    # Straight to Kafka, in structured mode: KafkaSource -> Broker -> Trigger.
    code = await send(
        "--kafka-bootstrap", kafka_bootstrap, "--topic", topic, "--mode", "structured",
        "--type", "via.kafka", "--id", f"{ns}-kafka", "--data", "hello",
    )  # fmt: skip
    assert code == 0
    via_kafka = await eventually(
        lambda: next((e for e in sink.events if e.get_id() == f"{ns}-kafka"), None),
        "the event sent to Kafka",
    )
    assert via_kafka.get_type() == "via.kafka"
    assert via_kafka.get_data() == "hello"
    delivered = [i for i in sink.ids() if i.startswith(ns)]
    assert len(delivered) == len(set(delivered)) == 7


async def test_kafka_broker_keeps_accepted_events_across_a_restart(
    runtimes: list[Runtime], sink: Sink, kafka_contract_bootstrap: str
) -> None:
    kafka_bootstrap = kafka_contract_bootstrap
    ns = f"kb-{uuid.uuid4().hex[:8]}"
    config = textwrap.dedent(f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: kafka-broker-config
          namespace: {ns}
        data:
          bootstrap.servers: "{kafka_bootstrap}"
          default.topic.partitions: "2"
          default.topic.replication.factor: "1"
        ---
        """)
    manifests = config + broker_yaml(
        ns,
        sink.url,
        broker_class="Kafka",
        config="{apiVersion: v1, kind: ConfigMap, name: kafka-broker-config}",
    )
    first = await start(runtimes, manifests)
    url = first.ingress_addresses[f"{ns}/default"]
    assert first.status()["brokers"][f"{ns}/default"]["class"] == "kafka"

    # Accepted while the subscriber holds every answer: in the topic, not delivered.
    sink.hold()
    sent = {f"{ns}-{i}" for i in range(6)}
    for i in range(6):
        headers, body = to_http_binary(event(ns, str(i), partitionkey=f"k{i}"))
        assert (await post(url, headers, body))[0] == 202
    await eventually(lambda: sink.held > 0, "deliveries in flight")
    await asyncio.to_thread(first.shutdown, drain=False)
    runtimes.remove(first)
    assert not set(sink.ids()) & sent

    # A new runtime: the Trigger's consumer group resumes and delivers what was accepted.
    sink.release()
    second = await start(runtimes, manifests)
    await eventually(lambda: sent <= set(sink.ids()), f"{sorted(sent)} after the restart")
    # The events carry the ingress's arrival time, and no TTL (removed before the subscriber).
    for received in sink.events:
        assert received.get("knativearrivaltime")
        assert "knativebrokerttl" not in received
    # New events keep flowing through the same topic and group.
    headers, body = to_http_binary(event(ns, "after"))
    assert (await post(second.ingress_addresses[f"{ns}/default"], headers, body))[0] == 202
    await eventually(lambda: f"{ns}-after" in sink.ids(), "an event after the restart")
    # A reply goes back through the topic to every Trigger (here the same one).
    headers, body = to_http_binary(event(ns, "question", type="test.ask"))
    assert (await post(second.ingress_addresses[f"{ns}/default"], headers, body))[0] == 202
    await eventually(lambda: f"{ns}-question-answer" in sink.ids(), "the reply delivered")
    answer = next(e for e in sink.events if e.get_id() == f"{ns}-question-answer")
    assert answer.get_type() == "test.answer"
    assert "knativebrokerttl" not in answer

"""Kafka security against a real Apache Kafka: SASL/SCRAM and TLS listeners, certificates made
here, credentials from environment variables and from a Secret-volume folder.

KafkaSource consumers (``knray.sources.KafkaConsumer``, no Ray) connect over SASL_PLAINTEXT,
SSL, SASL_SSL and mutual TLS as their ``spec.net`` says; a Kafka-class Broker on a real local
Ray connects over SASL_SSL as its ``auth.secret.ref.name`` Secret says. Wrong credentials and an
untrusted certificate fail with an error naming the resource and the cause; the password is
never in an error, a log record (aiokafka and knray at DEBUG), the counters or the status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import ray
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from knray.broker.outcome import DeliveryStatus, Outcome
from knray.cli.main import main
from knray.events import CloudEvent, to_http_binary
from knray.manifests.kafka_source import KafkaSource
from knray.runtime import Runtime
from knray.runtime.names import RAY_NAMESPACE, broker_actor_name
from knray.sources import KafkaConnectError, KafkaConsumer, SecretResolver
from knray.testing.apache_kafka import KAFKA_VERSION, ApacheKafka, ScramUser, start_apache_kafka
from knray.testing.kafka import create_topics, produce_events
from tests.integration.test_ingress import FAST_GROUP, Sink, broker_yaml, eventually, load, post
from tests.support.tls import TestCA

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PASSWORD = "alice-Pa55-never-printed"
WRONG = "wrong-Pa55-never-printed"
BOB_PASSWORD = "bob-Pa55-never-printed"
USERS = [
    ScramUser("alice", PASSWORD),  # SCRAM-SHA-512
    ScramUser("bob", BOB_PASSWORD, "SCRAM-SHA-256"),
]


def _start(**options: Any) -> ApacheKafka:
    try:
        return start_apache_kafka(**options)
    except Exception as error:  # fail, never skip: the reason is the message
        pytest.fail(f"cannot start Apache Kafka: {error}", pytrace=False)


@pytest.fixture(autouse=True)
def record_server(request: pytest.FixtureRequest) -> None:
    """Every test here runs on Apache Kafka (summed up at the end of the run)."""
    request.node.user_properties.append(("server", f"Apache Kafka {KAFKA_VERSION}"))


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def kafka(ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """One broker with every listener: PLAINTEXT, SASL_PLAINTEXT, SSL and SASL_SSL."""
    server = _start(scram_users=USERS, tls=ca.broker_files(tmp_path_factory.mktemp("tls")))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_kafka(ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """A broker that requires client certificates signed by the test CA."""
    folder = tmp_path_factory.mktemp("mtls")
    server = _start(tls=ca.broker_files(folder, client_ca=ca.cert))
    yield server
    server.stop()


class RecordingSink:
    """Accepts every event and keeps it."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        self.events.extend(events)
        return [Outcome(DeliveryStatus.DELIVERED) for _ in events]


def kafka_source(bootstrap: str, topic: str, net: Mapping[str, Any]) -> KafkaSource:
    return KafkaSource.model_validate(
        {
            "apiVersion": "sources.knative.dev/v1",
            "kind": "KafkaSource",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {
                "bootstrapServers": [bootstrap],
                "topics": [topic],
                "consumerGroup": f"group-{uuid.uuid4().hex[:8]}",
                "initialOffset": "earliest",
                "net": dict(net),
                "sink": {"uri": "http://sink.example/"},
            },
        }
    )


def secret(name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}


SASL = {
    "enable": True,
    "user": secret("kafka-creds", "user"),
    "password": secret("kafka-creds", "password"),
    "type": secret("kafka-creds", "sasl.mechanism"),
}
TLS = {"enable": True, "caCert": secret("kafka-ca", "ca.crt")}


def write_secret(folder: Path, name: str, values: Mapping[str, str]) -> None:
    """A Secret as Kubernetes mounts it: one file per key."""
    (folder / name).mkdir(parents=True, exist_ok=True)
    for key, value in values.items():
        (folder / name / key).write_text(value)


async def consume(kafka: ApacheKafka, bootstrap: str, net: Mapping[str, Any]) -> list[str]:
    """Three records produced over PLAINTEXT, consumed over ``bootstrap`` as ``net`` says."""
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    await create_topics(kafka.bootstrap, [topic])
    sent = [f"{topic}-{i}" for i in range(3)]
    await produce_events(kafka.bootstrap, [(topic, CloudEvent(_attributes(i))) for i in sent])
    sink = RecordingSink()
    consumer = KafkaConsumer(kafka_source(bootstrap, topic, net), sink)
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: len(sink.events) >= len(sent) or task.done(), "3 events", 60)
    finally:
        await consumer.stop()
        await task  # raises what run() raised
    return sorted(event.get_id() for event in sink.events)


def _attributes(event_id: str) -> dict[str, str]:
    return {"specversion": "1.0", "id": event_id, "source": "/secure", "type": "test.secure"}


def leaks(text: str, *secrets: str) -> list[str]:
    return [value for value in secrets if value in text]


async def test_source_over_sasl_plaintext_with_scram_sha_512_from_env(
    kafka: ApacheKafka, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("KNRAY_SECRETS_DIR", raising=False)
    monkeypatch.setenv("KNRAY_SECRET_KAFKA_CREDS_USER", "alice")
    monkeypatch.setenv("KNRAY_SECRET_KAFKA_CREDS_PASSWORD", PASSWORD)
    monkeypatch.setenv("KNRAY_SECRET_KAFKA_CREDS_SASL_MECHANISM", "SCRAM-SHA-512")
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    ids = await consume(kafka, kafka.listeners["SASL_PLAINTEXT"], {"sasl": SASL})
    assert len(ids) == 3
    # aiokafka logs each SASL step at DEBUG and the login at INFO: no credential in them.
    assert "Authenticated as <user from the Secret> via SCRAM-SHA-512" in caplog.text
    assert leaks(caplog.text, PASSWORD, "alice") == []


async def test_source_over_ssl_trusting_the_ca_from_a_secrets_folder(
    kafka: ApacheKafka, ca: TestCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secret(tmp_path, "kafka-ca", {"ca.crt": ca.cert})
    monkeypatch.setenv("KNRAY_SECRETS_DIR", str(tmp_path))
    ids = await consume(kafka, kafka.listeners["SSL"], {"tls": TLS})
    assert len(ids) == 3


async def test_source_over_sasl_ssl_with_scram_sha_256_from_env_and_folder(
    kafka: ApacheKafka, ca: TestCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secret(tmp_path, "kafka-ca", {"ca.crt": ca.cert})
    write_secret(tmp_path, "kafka-creds", {"user": "bob", "sasl.mechanism": "SCRAM-SHA-256"})
    monkeypatch.setenv("KNRAY_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("KNRAY_SECRET_KAFKA_CREDS_PASSWORD", BOB_PASSWORD)
    ids = await consume(kafka, kafka.listeners["SASL_SSL"], {"sasl": SASL, "tls": TLS})
    assert len(ids) == 3


async def test_source_over_mutual_tls(
    mtls_kafka: ApacheKafka, ca: TestCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ca.identity("orders.shop.knray.test")
    write_secret(tmp_path, "kafka-ca", {"ca.crt": ca.cert})
    write_secret(tmp_path, "kafka-client", {"user.crt": client.cert, "user.key": client.key})
    monkeypatch.setenv("KNRAY_SECRETS_DIR", str(tmp_path))
    mutual = {
        **TLS,
        "cert": secret("kafka-client", "user.crt"),
        "key": secret("kafka-client", "user.key"),
    }
    ids = await consume(mtls_kafka, mtls_kafka.listeners["SSL"], {"tls": mutual})
    assert len(ids) == 3
    # Without its certificate the client is turned away (with TLS 1.3 the client sees only a
    # closed connection), and the error says what may be missing.
    with pytest.raises(KafkaConnectError) as caught:
        await consume(mtls_kafka, mtls_kafka.listeners["SSL"], {"tls": TLS})
    assert str(caught.value).startswith("KafkaSource shop/orders: cannot connect to Kafka at ")
    assert "does it require a client certificate (none was given)?" in str(caught.value)


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
async def test_a_wrong_password_fails_fast_naming_the_source_and_printing_no_secret(
    kafka: ApacheKafka,
    ca: TestCA,
    listener: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("KNRAY_SECRETS_DIR", raising=False)
    monkeypatch.setenv("KNRAY_SECRET_KAFKA_CREDS_USER", "alice")
    monkeypatch.setenv("KNRAY_SECRET_KAFKA_CREDS_PASSWORD", WRONG)
    monkeypatch.setenv("KNRAY_SECRET_KAFKA_CREDS_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KNRAY_SECRET_KAFKA_CA_CA_CRT", ca.cert)
    net = {"sasl": SASL, "tls": TLS} if listener == "SASL_SSL" else {"sasl": SASL}
    bootstrap = kafka.listeners[listener]
    consumer = KafkaConsumer(kafka_source(bootstrap, "never-read", net), RecordingSink())
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    caplog.set_level(logging.DEBUG, logger="knray")
    with pytest.raises(KafkaConnectError) as caught:
        await asyncio.wait_for(consumer.run(), 30)  # fails at start, not after retries
    message = str(caught.value)
    assert message.startswith(
        f"KafkaSource shop/orders: cannot connect to Kafka at {bootstrap} over {listener} "
        "with SASL mechanism SCRAM-SHA-512 (settings from spec.net): "
        f"{bootstrap}: authentication failed, wrong user or password?"
    )
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in message  # the broker's
    printed = "".join(traceback.format_exception(caught.value))
    everything = "\n".join(
        [printed, repr(caught.value), caplog.text, json.dumps(consumer.stats()), repr(consumer)]
    )
    assert "SaslAuthenticate" in caplog.text  # aiokafka's DEBUG lines were captured
    assert leaks(everything, WRONG, PASSWORD) == []


async def test_an_untrusted_broker_certificate_is_a_clear_error(
    kafka: ApacheKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KNRAY_SECRETS_DIR", raising=False)
    monkeypatch.setenv("KNRAY_SECRET_KAFKA_CA_CA_CRT", TestCA().cert)  # not the broker's CA
    with pytest.raises(KafkaConnectError) as caught:
        await consume(kafka, kafka.listeners["SSL"], {"tls": TLS})
    message = str(caught.value)
    assert message.startswith(
        f"KafkaSource shop/orders: cannot connect to Kafka at {kafka.listeners['SSL']} over SSL"
    )
    assert "the broker's certificate is not trusted (unable to get local issuer certificate)" in (
        message
    )


# --- a Kafka-class Broker on Ray ----------------------------------------------------------
@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    server = Sink()
    await server.start()
    yield server
    await server.stop()


def kafka_broker_manifests(ns: str, bootstrap: str, sink_url: str) -> str:
    config = textwrap.dedent(f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: kafka-broker-config
          namespace: {ns}
        data:
          bootstrap.servers: "{bootstrap}"
          default.topic.partitions: "1"
          default.topic.replication.factor: "1"
          default.topic.config.retention.ms: "3600000"
          auth.secret.ref.name: kafka-auth
        ---
        """)
    ref = "{apiVersion: v1, kind: ConfigMap, name: kafka-broker-config}"
    return config + broker_yaml(ns, sink_url, broker_class="Kafka", config=ref)


def broker_secret(folder: Path, ca: TestCA, password: str) -> SecretResolver:
    """Knative's keys of a Kafka Broker's auth Secret, as files; only the folder's path goes
    to the Ray actors."""
    values = {
        "protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "user": "alice",
        "password": password,
        "ca.crt": ca.cert,
    }
    write_secret(folder, "kafka-auth", values)
    return SecretResolver(env={}, secrets_dir=folder)


async def test_kafka_broker_over_sasl_ssl_delivers_an_event_from_http(  # noqa: PLR0917 - fixtures
    runtimes: list[Runtime],
    sink: Sink,
    kafka: ApacheKafka,
    ca: TestCA,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = f"ks-{uuid.uuid4().hex[:8]}"
    # Only the SASL_SSL listener is named: every client of the Broker must use the Secret.
    manifests = kafka_broker_manifests(ns, kafka.listeners["SASL_SSL"], sink.url)
    secrets = broker_secret(tmp_path / "secrets", ca, PASSWORD)
    runtime = Runtime(http_port=0, consumer_options=FAST_GROUP, secrets=secrets)
    runtimes.append(runtime)
    await asyncio.to_thread(runtime.apply, load(manifests))
    url = runtime.ingress_addresses[f"{ns}/default"]
    headers, body = to_http_binary(CloudEvent(_attributes(f"{ns}-secure")))
    assert (await post(url, headers, body))[0] == 202
    await eventually(lambda: f"{ns}-secure" in sink.ids(), "the event at the subscriber")
    # The topic was created with default.topic.config.* (asked over PLAINTEXT).
    assert await topic_config(kafka, f"knative-broker-{ns}-default", "retention.ms") == "3600000"
    # Neither the runtime's status nor `knray status` shows a credential.
    capsys.readouterr()
    address = ray.get_runtime_context().gcs_address
    assert await asyncio.to_thread(main, ["status", "--address", address, "--json"]) == 0
    shown = capsys.readouterr().out + json.dumps(runtime.status())
    assert f"Trigger/{ns}/all" in shown
    assert leaks(shown, PASSWORD, "alice") == []


async def test_kafka_broker_with_a_wrong_password_is_refused_naming_the_broker(
    runtimes: list[Runtime], kafka: ApacheKafka, ca: TestCA, tmp_path: Path
) -> None:
    ns = f"kw-{uuid.uuid4().hex[:8]}"
    manifests = kafka_broker_manifests(ns, kafka.listeners["SASL_SSL"], "http://127.0.0.1:9/")
    secrets = broker_secret(tmp_path / "secrets", ca, WRONG)
    runtime = Runtime(consumer_options=FAST_GROUP, secrets=secrets)
    runtimes.append(runtime)
    with pytest.raises(KafkaConnectError) as caught:
        await asyncio.to_thread(runtime.apply, load(manifests))
    message = str(caught.value)
    assert message.startswith(
        f"Broker {ns}/default: cannot connect to Kafka at {kafka.listeners['SASL_SSL']} over "
        "SASL_SSL with SASL mechanism SCRAM-SHA-512 (settings from Secret 'kafka-auth'): "
    )
    assert "authentication failed, wrong user or password?" in message
    assert leaks("".join(traceback.format_exception(caught.value)), WRONG) == []
    # The Broker's actors did not stay behind: the next apply can create them again.
    for index in range(runtime.dispatchers_per_broker):
        with pytest.raises(ValueError, match="Failed to look up actor"):
            ray.get_actor(broker_actor_name(f"{ns}/default", index), namespace=RAY_NAMESPACE)


async def topic_config(kafka: ApacheKafka, topic: str, name: str) -> str | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {name: None})
        (response,) = await admin.describe_configs([resource])
    finally:
        await admin.close()
    for *_head, entries in response.resources:
        for entry_name, value, *_rest in entries:
            if entry_name == name:
                return str(value)
    return None

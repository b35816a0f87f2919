"""The user's handler module the CLI tests write into a fresh project folder."""

from __future__ import annotations

# Appends each event id to the file named by RECEIVED_FILE: the tests read what arrived.
RECORDING_HANDLER = """
import os

from knray import CloudEvent


def record(event: CloudEvent) -> None:
    with open(os.environ["RECEIVED_FILE"], "a", encoding="utf-8") as out:
        out.write(event.get_id() + "\\n")
"""

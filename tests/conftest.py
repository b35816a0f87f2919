"""Suite-wide pytest settings and a summary of the conformance suites."""

from __future__ import annotations

import os
from collections import Counter

import pytest

os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
# A local Ray binds to 127.0.0.1 instead of the machine's network address (set before Ray is
# imported: Ray reads it at import time). Tests send traffic to loopback only.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

_SUITES = {
    "tests/conformance/test_cesql_tck.py": "CloudEvents SQL TCK",
    "tests/conformance/test_ce_bindings.py": "CloudEvents binding conformance",
}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print pass/fail counts of each conformance suite, so CI logs show them at a glance."""
    counts: dict[str, Counter[str]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            for prefix, suite in _SUITES.items():
                if nodeid.startswith(prefix) and getattr(report, "when", "call") in {
                    "call",
                    "setup",
                }:
                    if outcome == "passed" and report.when != "call":
                        continue
                    counts.setdefault(suite, Counter())[outcome] += 1
    for suite, counter in counts.items():
        parts = ", ".join(f"{n} {outcome}" for outcome, n in counter.items())
        terminalreporter.write_line(f"{suite}: {parts}")
    # Which real servers the integration tests ran on (fixtures note it on each report).
    servers: dict[str, Counter[str]] = {}
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome == "passed":
                continue
            for key, value in getattr(report, "user_properties", ()):
                if key == "server":
                    servers.setdefault(value, Counter())[outcome] += 1
    for server, counter in sorted(servers.items()):
        parts = ", ".join(f"{n} {outcome}" for outcome, n in counter.items())
        terminalreporter.write_line(f"tests on {server}: {parts}")

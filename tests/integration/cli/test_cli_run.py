"""`knray run` and `knray demo` as a user runs them: real processes, real Ray, real Kafka."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from knray import CloudEvent
from knray.testing.kafka import produce_events
from tests.integration.cli.user_project import RECORDING_HANDLER, knray_env, wait_for_received

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]

MANIFESTS = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
---
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata:
  name: orders
spec:
  bootstrapServers: [127.0.0.1:9]   # replaced with --bootstrap-servers
  topics: [{topic}]
  initialOffset: earliest
  sink:
    ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: paid
spec:
  broker: default
  filters:
    - cesql: "type = 'order.paid' AND INT(amount) >= 10"
  subscriber:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: recorder}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: recorder
spec:
  template:
    metadata:
      annotations:
        knray.dev/handler: myhandlers:record
        autoscaling.knative.dev/min-scale: "1"
"""


def _knray() -> list[str]:
    return [sys.executable, "-m", "knray.cli"]


def _order(number: int) -> CloudEvent:
    kind = "order.paid" if number % 2 == 0 else "order.created"
    attributes = {
        "specversion": "1.0",
        "id": f"order-{number}",
        "source": "/shop",
        "type": kind,
        "amount": str(number % 30),
    }
    return CloudEvent(attributes, {"n": number})


async def test_knray_run_delivers_from_a_users_project_and_stops_cleanly(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., Awaitable[str]],
) -> None:
    topic = await kafka_topic(partitions=2)
    project = tmp_path / "project"
    project.mkdir()
    (project / "myhandlers.py").write_text(textwrap.dedent(RECORDING_HANDLER))
    (project / "app.yaml").write_text(MANIFESTS.format(topic=topic))
    received = tmp_path / "received.txt"
    log = (tmp_path / "run.log").open("w")
    options = ["--bootstrap-servers", kafka_bootstrap, "--no-status", "--http-port", "0"]
    process = subprocess.Popen(
        [*_knray(), "run", "-f", "app.yaml", *options],
        cwd=project,
        env=knray_env(RECEIVED_FILE=str(received), PYTHONPATH=str(REPO)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        first = [_order(n) for n in range(200)]
        await produce_events(kafka_bootstrap, [(topic, event) for event in first])
        expected = {e.get_id() for e in first if _paid(e, minimum=10)}
        await wait_for_received(expected, received, process, tmp_path / "run.log")
        # The Broker's HTTP ingress: `knray run` prints its address, `knray send` posts to it.
        printed = "Broker default/default ingress: "
        output = await _wait_for_log(tmp_path / "run.log", printed, process)
        address = output.split(printed, 1)[1].split()[0]
        event = ["--type", "order.paid", "--id", "order-by-http", "--extension", "amount=25"]
        sent = await asyncio.to_thread(
            subprocess.run,
            [*_knray(), "send", "--broker-url", address, "--source", "/shop", *event],
            env=knray_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        expected.add("order-by-http")
        await wait_for_received(expected, received, process, tmp_path / "run.log")
        # Editing the manifests while running re-applies them: the filter now wants >= 20.
        (project / "app.yaml").write_text(
            MANIFESTS.format(topic=topic).replace("INT(amount) >= 10", "INT(amount) >= 20")
        )
        await _wait_for_log(tmp_path / "run.log", "manifests changed: applied", process)
        second = [_order(n) for n in range(200, 300)]
        await produce_events(kafka_bootstrap, [(topic, event) for event in second])
        expected |= {e.get_id() for e in second if _paid(e, minimum=20)}
        await wait_for_received(expected, received, process, tmp_path / "run.log")
        process.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(process.wait, 120)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    output = (tmp_path / "run.log").read_text()
    assert code == 0, output[-3000:]
    assert "draining" in output


def _paid(event: CloudEvent, *, minimum: int) -> bool:
    return event.get_type() == "order.paid" and int(event["amount"]) >= minimum


async def _wait_for_log(log: Path, text: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        output = log.read_text()
        if text in output:
            return output
        await asyncio.sleep(0.5)
    raise AssertionError(f"{text!r} not in the output: {log.read_text()[-3000:]}")


def test_knray_demo_runs_to_a_summary_with_nothing_lost(tmp_path: Path) -> None:
    result = subprocess.run(
        [*_knray(), "demo", "--steady-events", "300", "--rate", "150", "--burst-events", "700"],
        cwd=REPO,
        env=knray_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "produced 1000, finished at the source 1000, lost 0" in output

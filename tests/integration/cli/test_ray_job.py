"""`knray run` as a Ray job: `ray job submit` to a real head node on loopback, events from a
real Kafka-protocol broker, `ray job stop`, committed offsets checked afterwards.

The head node is started as users start one (`ray start --head --block`), in its own process
group on free ports and its own temp dir, and stopped by signalling that group (never
`ray stop`, which would stop every Ray on the machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from knray import CloudEvent
from knray.testing.kafka import produce_events
from tests.integration.cli.user_project import RECORDING_HANDLER

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent

MANIFESTS = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
---
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata:
  name: clicks
spec:
  bootstrapServers: [127.0.0.1:9]   # replaced with --bootstrap-servers
  topics: [{topic}]
  consumerGroup: {group}
  initialOffset: earliest
  sink:
    ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: clicks
spec:
  broker: default
  filter:
    attributes:
      type: page.click
  subscriber:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: job-recorder}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: job-recorder
spec:
  template:
    metadata:
      annotations:
        knray.dev/handler: myhandlers:record
        autoscaling.knative.dev/min-scale: "1"
"""


_TOKEN = secrets.token_hex(32)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _ray_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("RAY_ADDRESS", "RAY_JOB_CONFIG_JSON_ENV_VAR"):
        env.pop(name, None)
    env.update(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_ENABLE_AUTO_CONNECT="0",
        # Token authentication, as a head started where ~/.ray/auth_token exists has it; the
        # test's own token, so nothing depends on that file existing.
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=_TOKEN,
        # A node stopped by SIGTERM drains for 30 s by default; the test's head goes at once.
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Head:
    """A running `ray start --head --block` process and its dashboard address."""

    process: subprocess.Popen[bytes]
    dashboard: str
    log: Path

    def ray(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the `ray` CLI against this head."""
        return subprocess.run(
            [str(BIN / "ray"), *args],
            env=_ray_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


@pytest.fixture
def ray_head() -> Iterator[Head]:
    """A real head node on loopback, free ports, its own temp dir; stopped by process group."""
    gcs, dashboard, client, agent, agent_grpc, metrics, node_manager, objects, env_agent = (
        _free_ports(9)
    )
    temp_dir = tempfile.mkdtemp(prefix="knray-job-")  # short: Ray's socket paths have a limit
    log = Path(temp_dir) / "head.log"
    command = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}",
        f"--node-manager-port={node_manager}",
        f"--object-manager-port={objects}",
        f"--runtime-env-agent-port={env_agent}",
        f"--temp-dir={temp_dir}",
        "--num-cpus=2",
        "--disable-usage-stats",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=_ray_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    head = Head(process, f"http://127.0.0.1:{dashboard}", log)
    try:
        _wait_for_dashboard(head)
        yield head
    finally:
        _stop_process_group(process)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_dashboard(head: Head) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert head.process.poll() is None, head.log.read_text()[-3000:]
        if head.ray("job", "list", "--address", head.dashboard, timeout_s=60).returncode == 0:
            return
        time.sleep(1)
    raise AssertionError(f"the head node did not start: {head.log.read_text()[-3000:]}")


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _click(number: int) -> CloudEvent:
    kind = "page.click" if number % 3 else "page.view"
    attributes = {"specversion": "1.0", "id": f"click-{number}", "source": "/web", "type": kind}
    return CloudEvent(attributes, {"n": number})


async def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """The committed offsets of ``group`` on ``topic``, added over partitions (a consumer of
    the group asks the coordinator, as a restarted knray would)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        total = 0
        for partition in range(partitions):
            offset = await consumer.committed(TopicPartition(topic, partition))
            total += offset or 0
        return total
    finally:
        await consumer.stop()


def _job_status(head: Head, job: str) -> str:
    result = head.ray("job", "status", "--address", head.dashboard, job)
    return result.stdout + result.stderr


def _job_logs(head: Head, job: str) -> str:
    return head.ray("job", "logs", "--address", head.dashboard, job).stdout


async def test_ray_job_submit_runs_knray_and_ray_job_stop_drains_and_commits(
    ray_head: Head,
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., Awaitable[str]],
) -> None:
    partitions = 2
    topic = await kafka_topic(partitions=partitions)
    group = f"knray-job-{uuid.uuid4().hex[:8]}"
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    (project / "myhandlers.py").write_text(textwrap.dedent(RECORDING_HANDLER))
    (project / "configs" / "app.yaml").write_text(MANIFESTS.format(topic=topic, group=group))
    received = tmp_path / "received.txt"
    job = f"knray-{uuid.uuid4().hex[:8]}"
    # `ray job stop` waits this long between SIGTERM and SIGKILL (3 s by default).
    env_vars = {"RAY_JOB_STOP_WAIT_TIME_S": "60", "RECEIVED_FILE": str(received)}
    runtime_env = json.dumps({"env_vars": env_vars})
    submitted = ray_head.ray(
        "job",
        "submit",
        "--address",
        ray_head.dashboard,
        "--submission-id",
        job,
        "--working-dir",
        str(project),
        "--runtime-env-json",
        runtime_env,
        "--no-wait",
        "--",
        str(BIN / "knray"),
        "run",
        "-f",
        "configs/",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--no-status",
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    await _wait_for_log(ray_head, job, "running; Ctrl-C stops")

    events = [_click(n) for n in range(300)]
    await produce_events(kafka_bootstrap, [(topic, event) for event in events])
    expected = {e.get_id() for e in events if e.get_type() == "page.click"}
    await _wait_for_file(expected, received, ray_head, job)

    stopped = await asyncio.to_thread(
        ray_head.ray, "job", "stop", "--address", ray_head.dashboard, job, timeout_s=180
    )
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "was stopped" in _job_status(ray_head, job)
    logs = _job_logs(ray_head, job)
    assert "stopping (SIGTERM): draining in-flight events" in logs, logs[-3000:]
    # The driver saw the stop grace the job was submitted with (no warning about 3 s).
    assert "kills this job" not in logs, logs[-3000:]
    # The driver drained and committed every record it read before it exited.
    assert await _committed(kafka_bootstrap, group, topic, partitions) == len(events), logs[-3000:]
    # It deleted its Serve application on the way out (Serve apps outlive a job otherwise).
    applications = subprocess.run(
        [str(BIN / "serve"), "status", "--address", ray_head.dashboard],
        env=_ray_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert applications.returncode == 0, applications.stderr
    assert "job-recorder" not in applications.stdout, applications.stdout


async def _wait_for_log(head: Head, job: str, text: str) -> None:
    deadline = time.monotonic() + 180
    logs = ""
    while time.monotonic() < deadline:
        logs = await asyncio.to_thread(_job_logs, head, job)
        if text in logs:
            return
        status = await asyncio.to_thread(_job_status, head, job)
        assert "FAILED" not in status, status + logs[-3000:]
        assert "SUCCEEDED" not in status, status + logs[-3000:]
        await asyncio.sleep(1)
    raise AssertionError(f"{text!r} not in the job's logs: {logs[-3000:]}")


async def _wait_for_file(expected: set[str], received: Path, head: Head, job: str) -> None:
    deadline = time.monotonic() + 180
    got: set[str] = set()
    while time.monotonic() < deadline and not expected <= got:
        if received.exists():
            got = set(received.read_text().split())
        await asyncio.sleep(1)
    assert expected <= got, _job_logs(head, job)[-3000:]
    assert got <= expected, sorted(got - expected)[:10]

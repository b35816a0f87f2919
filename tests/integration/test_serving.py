"""Knative Services on a real local Ray Serve: per-event outcomes, replies, cold start from
zero, scale-up on events in flight and back to zero, and the policy never wedging Serve."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ray import serve

from knray.events import CloudEvent
from knray.manifests import parse_manifests
from knray.manifests.service import KnativeService
from knray.serving import (
    ServeSubscriber,
    app_name,
    batch_handler,
    build_application,
    delete_service,
    deploy_service,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# --- handlers the replicas import from this module ---------------------------------------


def echo(event: CloudEvent) -> CloudEvent | None:
    """Reply to ``ping`` events; fail on ``boom``; accept the rest."""
    if event.get_type() == "boom":
        raise ValueError(f"bad event {event.get_id()}")
    if event.get_type() == "ping":
        return CloudEvent(
            {
                "id": f"reply-{event.get_id()}",
                "source": "/echo",
                "type": "pong",
                "specversion": "1.0",
            },
            data=event.get_data(),
        )
    return None


@batch_handler(max_batch_size=8, batch_wait_timeout_s=0.01)
async def batch_echo(events: list[CloudEvent]) -> list[object]:
    """A batch handler: the ``boom`` events fail alone."""
    return [ValueError("boom") if e.get_type() == "boom" else None for e in events]


def slow(event: CloudEvent) -> None:
    """A slow sync handler: 50 ms per event."""
    time.sleep(0.05)


# --- helpers ------------------------------------------------------------------------------


def _service(name: str, handler: str, annotations: dict[str, str] | None = None) -> KnativeService:
    lines = "".join(f'        {key}: "{value}"\n' for key, value in (annotations or {}).items())
    text = f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
  namespace: test
spec:
  template:
    metadata:
      annotations:
        knray.dev/handler: "{handler}"
{lines}    spec:
      containers:
        - image: example.com/handler
"""
    (service,) = parse_manifests(text).resources
    assert isinstance(service, KnativeService)
    return service


def _event(index: int, kind: str = "demo") -> CloudEvent:
    return CloudEvent(
        {"id": str(index), "source": "/test", "type": kind, "specversion": "1.0"}, data={"n": index}
    )


def _running(app: str) -> int:
    status = serve.status().applications.get(app)
    if status is None:
        return 0
    deployment = status.deployments[app]
    states: dict[Any, int] = deployment.replica_states
    return sum(n for state, n in states.items() if getattr(state, "value", state) == "RUNNING")


@pytest.fixture
def deployed(ray_local: None) -> Iterator[list[KnativeService]]:
    services: list[KnativeService] = []
    yield services
    for service in services:
        delete_service(service)


# --- tests --------------------------------------------------------------------------------


async def test_per_event_responses_and_replies(deployed: list[KnativeService]) -> None:
    service = _service("echo", f"{__name__}:echo", {"autoscaling.knative.dev/min-scale": "1"})
    deployed.append(service)
    await asyncio.to_thread(deploy_service, service)
    subscriber = ServeSubscriber.for_service(service)
    assert subscriber.address == "serve://test.echo/test.echo"
    events = [_event(0, "ping"), _event(1), _event(2, "boom"), _event(3, "ping")]
    responses = await subscriber.send(events, timeout_s=30)
    assert [r.code for r in responses] == [200, 200, 500, 200]
    assert responses[0].reply is not None
    assert responses[0].reply.get_id() == "reply-0"
    assert responses[0].reply.get_data() == {"n": 0}
    assert responses[1].reply is None
    assert "ValueError: bad event 2" in (responses[2].error or "")
    many = [_event(i, "boom" if i % 50 == 7 else "demo") for i in range(300)]
    codes = [r.code for r in await subscriber.send(many, timeout_s=30)]
    assert codes == [500 if i % 50 == 7 else 200 for i in range(300)]


async def test_batch_handler_failing_event_fails_alone(deployed: list[KnativeService]) -> None:
    service = _service(
        "batch", f"{__name__}:batch_echo", {"autoscaling.knative.dev/min-scale": "1"}
    )
    deployed.append(service)
    await asyncio.to_thread(deploy_service, service)
    subscriber = ServeSubscriber.for_service(service)
    events = [_event(i, "boom" if i == 5 else "demo") for i in range(20)]
    responses = await subscriber.send(events, timeout_s=30)
    assert [r.code for r in responses] == [500 if i == 5 else 200 for i in range(20)]
    assert responses[5].error == "ValueError: boom"


async def test_scale_from_zero_up_under_burst_and_back_to_zero(
    deployed: list[KnativeService],
) -> None:
    service = _service(
        "slow",
        f"{__name__}:slow",
        {
            "autoscaling.knative.dev/min-scale": "0",
            "autoscaling.knative.dev/initial-scale": "0",
            "autoscaling.knative.dev/max-scale": "3",
            "autoscaling.knative.dev/target": "5",
            "autoscaling.knative.dev/window": "6s",
            "autoscaling.knative.dev/scale-down-delay": "0s",
            "autoscaling.knative.dev/scale-to-zero-pod-retention-period": "1s",
        },
    )
    deployed.append(service)
    app = "test.slow"
    await asyncio.to_thread(deploy_service, service)
    assert await asyncio.to_thread(_running, app) == 0

    subscriber = ServeSubscriber.for_service(service)
    # Cold start: the first events wait in the handle until a replica runs; none is lost.
    started = time.monotonic()
    first = await subscriber.send([_event(i) for i in range(10)], timeout_s=120)
    cold_start_s = time.monotonic() - started
    assert [r.code for r in first] == [200] * 10

    # A burst of slow events: more than one replica's threads can drain.
    peak = 1
    burst_started = time.monotonic()
    scaled_up_after: float | None = None
    sends: list[asyncio.Task[list[Any]]] = []
    for round_ in range(40):
        batch = [_event(1000 + round_ * 60 + i) for i in range(60)]
        sends.append(asyncio.create_task(subscriber.send(batch, timeout_s=120)))
        await asyncio.sleep(0.25)
        running = await asyncio.to_thread(_running, app)
        if running > 1 and scaled_up_after is None:
            scaled_up_after = time.monotonic() - burst_started
        peak = max(peak, running)
        if scaled_up_after is not None and round_ >= 20:
            break
    results = await asyncio.gather(*sends)
    burst_end = time.monotonic()
    assert all(r.code == 200 for batch in results for r in batch)
    assert peak > 1, "no scale-up under the burst"

    # Back to zero once the stable window has seen no events (plus the retention).
    zero_after: float | None = None
    while time.monotonic() - burst_end < 60:
        await asyncio.sleep(0.5)
        if await asyncio.to_thread(_running, app) == 0:
            zero_after = time.monotonic() - burst_end
            break
    assert zero_after is not None, "did not scale back to zero"
    print(
        f"\nserving timings: cold start {cold_start_s:.1f}s, scale-up after {scaled_up_after:.1f}s "
        f"of burst, peak {peak} replicas, zero {zero_after:.1f}s after the burst"
    )


async def test_policy_errors_do_not_wedge_serve(deployed: list[KnativeService]) -> None:
    # Parameters that make the policy raise on every tick inside the Serve controller: it
    # must catch that and hold the target, so Serve stays responsive and the app serves.
    service = _service("wedge", f"{__name__}:echo", {"autoscaling.knative.dev/min-scale": "1"})
    deployed.append(service)
    application = build_application(service, policy_kwargs={"window_s": "not a number"})
    started = time.monotonic()
    await asyncio.to_thread(
        serve.run, application, name=app_name(service), route_prefix=None, blocking=False
    )
    assert time.monotonic() - started < 60
    responses = await ServeSubscriber.for_service(service).send([_event(1, "ping")], timeout_s=30)
    assert responses[0].code == 200
    await asyncio.sleep(2.0)
    status = await asyncio.to_thread(serve.status)
    assert status.applications[app_name(service)].status == "RUNNING"
    assert await asyncio.to_thread(_running, app_name(service)) == 1

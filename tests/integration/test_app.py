"""The Serve application entry point (``knray.runtime.app:build``) as a RayService runs it: the
``serveConfigV2`` that ``knray kuberay render`` writes, checked by Serve's own schema, deployed
on a real local Ray with a real Kafka-protocol broker; deleting the application drains and
commits."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import ray
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from ray import serve
from ray.serve.schema import ServeDeploySchema

from knray.deploy import ManifestFile, RenderKind, RenderOptions, render
from knray.events import CloudEvent
from knray.manifests import parse_manifests
from knray.runtime.app import INGRESS_DEPLOYMENT, build
from knray.testing.kafka import produce_events
from tests.integration.handlers.recording import RUN_EXTENSION, Recorder

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MANIFESTS = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: orders, namespace: {ns}}}
---
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {{name: orders, namespace: {ns}}}
spec:
  bootstrapServers: [127.0.0.1:9]   # the application's bootstrap_servers replaces it
  topics: [{topic}]
  consumerGroup: {group}
  initialOffset: earliest
  sink:
    ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: orders}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: paid, namespace: {ns}}}
spec:
  broker: orders
  filter:
    attributes: {{type: order.paid}}
  subscriber:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: recorder}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: recorder, namespace: {ns}}}
spec:
  template:
    metadata:
      annotations:
        knray.dev/handler: tests.integration.handlers.recording:record
        autoscaling.knative.dev/min-scale: "1"
"""


def _event(ns: str, number: int) -> CloudEvent:
    attributes = {
        "specversion": "1.0",
        "id": f"{ns}-{number}",
        "source": "/shop",
        "type": "order.paid" if number % 2 else "order.created",
        RUN_EXTENSION: ns,
    }
    return CloudEvent(attributes, {"n": number})


async def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0)) or 0
    finally:
        await consumer.stop()


async def test_rendered_serve_config_hosts_the_system_and_drains_when_deleted(
    ray_local: None, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    ns = f"app-{uuid.uuid4().hex[:8]}"
    topic = await kafka_topic(partitions=1)
    group = f"knray-app-{ns}"
    text = MANIFESTS.format(ns=ns, topic=topic, group=group)
    options = RenderOptions(
        kind=RenderKind.RAYSERVICE, name="orders", bootstrap_servers=kafka_bootstrap
    )
    (service,) = render(parse_manifests(text).resources, [ManifestFile("app.yaml", text)], options)
    config = ServeDeploySchema.model_validate(yaml.safe_load(service["spec"]["serveConfigV2"]))
    (application,) = config.applications
    assert application.import_path == "knray.runtime.app:build"

    recorder: Any = ray.remote(Recorder)
    recorder = recorder.options(
        name="Recorder", namespace="knray", num_cpus=0, get_if_exists=True
    ).remote()
    name = f"knray-{ns}"
    await asyncio.to_thread(
        serve.run, build(application.args), name=name, route_prefix=None, blocking=False
    )
    try:
        deadline = time.monotonic() + 120
        while serve.status().applications[name].status != "RUNNING":
            assert time.monotonic() < deadline, serve.status().applications[name]
            await asyncio.sleep(0.5)
        deployments = set(serve.status().applications[name].deployments)
        assert deployments == {INGRESS_DEPLOYMENT, f"{ns}.recorder"}

        events = [_event(ns, n) for n in range(100)]
        await produce_events(kafka_bootstrap, [(topic, event) for event in events])
        expected = sorted(e.get_id() for e in events if e.get_type() == "order.paid")
        got: list[str] = []
        while time.monotonic() < deadline and sorted(set(got)) != expected:
            got = await recorder.ids.remote(f"{ns}/received")
            await asyncio.sleep(0.5)
        assert sorted(set(got)) == expected
        ingress = serve.get_deployment_handle(INGRESS_DEPLOYMENT, name)
        status = await ingress.status.remote()
        delivered = sum(route["delivered"] for route in status["triggers"].values())
        assert delivered == len(expected), status
        assert status["services"][f"{ns}/recorder"]["replicas"] == 1, status
    finally:
        # Deleting the application stops the ingress replica: it drains and commits.
        await asyncio.to_thread(serve.delete, name)
    assert await _committed(kafka_bootstrap, group, topic) == len(events)

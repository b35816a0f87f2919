"""Resources built in Python equal the same resources loaded from YAML, with the same checks."""

from __future__ import annotations

import pytest

from knray.errors import ManifestError
from knray.manifests import parse_manifests
from knray.manifests.builders import (
    broker,
    delivery,
    destination,
    handler_spec,
    kafka_source,
    service,
    trigger,
)

YAML = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: chat, namespace: live}
spec:
  delivery:
    retry: 3
    backoffPolicy: exponential
    backoffDelay: PT0.2S
    timeout: PT10S
    deadLetterSink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: dead}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: moderation, namespace: live}
spec:
  template:
    metadata:
      annotations:
        knray.dev/handler: examples.livechat.handlers:moderate
        autoscaling.knative.dev/min-scale: "0"
        autoscaling.knative.dev/max-scale: "8"
        autoscaling.knative.dev/target: "10"
        autoscaling.knative.dev/window: "10s"
        knray.dev/num-gpus: "0.5"
    spec:
      containerConcurrency: 20
      containers: [{resources: {requests: {cpu: "0.25"}}}]
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: toxic
  namespace: live
  annotations: {kafka.eventing.knative.dev/delivery.order: ordered}
spec:
  broker: chat
  filters:
    - exact: {type: chat.moderated}
    - cesql: "subject LIKE 'room/%'"
    - cel: "event.data.toxicity > 0.8"
  subscriber:
    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: moderation, namespace: live}
---
apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata: {name: chat-in, namespace: live}
spec:
  bootstrapServers: [127.0.0.1:9092]
  topics: [messages]
  consumers: 2
  initialOffset: earliest
  ordering: unordered
  ceOverrides: {extensions: {platform: livestream}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: chat, namespace: live}}
"""


def test_built_resources_equal_their_yaml() -> None:
    chat = broker(
        "chat",
        namespace="live",
        delivery=delivery(
            retry=3,
            backoff_policy="exponential",
            backoff_delay_s=0.2,
            timeout_s=10,
            dead_letter_sink="dead",
        ),
    )
    moderation = service(
        "moderation",
        namespace="live",
        handler="examples.livechat.handlers:moderate",
        min_scale=0,
        max_scale=8,
        target=10,
        window_s=10,
        num_gpus=0.5,
        container_concurrency=20,
        num_cpus=0.25,
    )
    toxic = trigger(
        "toxic",
        namespace="live",
        broker="chat",
        subscriber=moderation,
        exact={"type": "chat.moderated"},
        cesql="subject LIKE 'room/%'",
        cel="event.data.toxicity > 0.8",
        ordered=True,
    )
    source = kafka_source(
        "chat-in",
        namespace="live",
        topics=["messages"],
        sink=chat,
        consumers=2,
        initial_offset="earliest",
        ordering="unordered",
        extensions={"platform": "livestream"},
    )
    assert [chat, moderation, toxic, source] == list(parse_manifests(YAML).resources)


def test_builders_report_bad_fields_with_their_paths() -> None:
    with pytest.raises(ManifestError, match=r"spec.filters\[0\].cesql: invalid CESQL"):
        trigger("t", broker="b", subscriber="s", cesql="type LIKE")
    with pytest.raises(ManifestError, match=r"min-scale"):
        service("s", handler="m:f", min_scale=5, max_scale=2)
    with pytest.raises(ManifestError, match="invalid name"):
        broker("Not_A_Name")


def handler(event: object) -> None:
    return None


def test_destinations_and_handler_specs() -> None:
    assert destination("https://sink.example/x") == {"uri": "https://sink.example/x"}
    assert destination("ns/svc") == {
        "ref": {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "name": "svc",
            "namespace": "ns",
        }
    }
    assert handler_spec(handler) == f"{__name__}:handler"
    with pytest.raises(ValueError, match="lambda"):
        handler_spec(lambda event: None)

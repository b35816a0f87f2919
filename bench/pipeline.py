"""The manifests every benchmark starts from: a KafkaSource feeding a Broker."""

from __future__ import annotations

import uuid

__all__ = ["kafka_to_broker"]


def kafka_to_broker(namespace: str, topic: str, bootstrap: str, broker: str = "bench") -> str:
    """YAML of a Broker and a KafkaSource (one consumer, unordered, a fresh group) feeding it;
    a benchmark appends its Service and Triggers after a ``---``."""
    return f"""
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: {broker}, namespace: {namespace}}}
---
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {{name: bench, namespace: {namespace}}}
spec:
  bootstrapServers: ["{bootstrap}"]
  topics: ["{topic}"]
  consumerGroup: knray-{uuid.uuid4().hex[:6]}
  consumers: 1
  initialOffset: earliest
  ordering: unordered
  sink: {{ref: {{apiVersion: eventing.knative.dev/v1, kind: Broker, name: {broker}}}}}
"""

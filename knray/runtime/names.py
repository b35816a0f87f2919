"""Names of knray's Ray actors and Serve applications: stable, so other processes find them."""

from __future__ import annotations

from typing import Final

__all__ = [
    "INGRESS_ACTOR_NAME",
    "RAY_NAMESPACE",
    "broker_actor_name",
    "kafka_trigger_actor_name",
    "source_actor_name",
]

RAY_NAMESPACE: Final = "knray"
# The HTTP ingress of every Broker (one per runtime).
INGRESS_ACTOR_NAME: Final = "ingress"


def broker_actor_name(broker_key: str, index: int) -> str:
    """The dispatcher actor ``index`` of the Broker ``namespace/name``."""
    return f"broker:{broker_key}:{index}"


def source_actor_name(source_key: str, index: int) -> str:
    """The consumer actor ``index`` of a source (``Kind/namespace/name``)."""
    return f"source:{source_key}:{index}"


def kafka_trigger_actor_name(trigger_key: str) -> str:
    """The consumer actor of a Trigger (``Trigger/namespace/name``) of a Kafka-class Broker."""
    return f"trigger:{trigger_key}:0"

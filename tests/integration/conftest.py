"""Fixtures of the integration tests: real Ray, a real Kafka-protocol broker, real HTTP."""

from tests.integration.fixtures_kafka import *  # noqa: F403
from tests.integration.fixtures_ray import ray_local, runtimes

__all__ = ["ray_local", "runtimes"]

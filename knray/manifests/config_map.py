"""ConfigMap (core v1): plain configuration, as a Kafka-class Broker's ``spec.config`` names."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from knray.manifests.base import Resource

__all__ = ["ConfigMap"]


class ConfigMap(Resource):
    """A Kubernetes ConfigMap; knray reads its ``data`` (string values)."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    KIND: ClassVar[str] = "ConfigMap"

    data: dict[str, str] = Field(default_factory=dict)
    binary_data: dict[str, str] | None = None
    immutable: bool | None = None

"""Knative Service (serving.knative.dev/v1): the subscriber that runs a handler."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from knray.manifests.base import ManifestModel, Resource
from knray.manifests.scaling import AutoscalingSpec, autoscaling_from_annotations

__all__ = [
    "Container",
    "KnativeService",
    "RevisionSpec",
    "RevisionTemplate",
    "ServiceSpec",
    "TrafficTarget",
]

# Knative's default max-revision-timeout-seconds (config-defaults).
MAX_TIMEOUT_S = 600
# Knative's container-concurrency-max-limit default.
MAX_CONTAINER_CONCURRENCY = 1000


# Extended resources knray maps to Ray's ``num_gpus``.
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")


def _check_gpus(quantities: dict[str, str | int | float]) -> dict[str, str | int | float]:
    for name in GPU_RESOURCES:
        if name in quantities:
            # Kubernetes: extended resources are whole numbers (no "500m" of a GPU); use the
            # knray.dev/num-gpus annotation for a share of one.
            text = str(quantities[name]).strip()
            if not text.isdigit():
                raise ValueError(
                    f"{name}: {quantities[name]!r} is not a whole number of GPUs "
                    "(for a share of a GPU use the knray.dev/num-gpus annotation)"
                )
    return quantities


class ResourceRequirements(ManifestModel):
    """Container resources; quantities stay strings (``500m``, ``1Gi``, ``1``)."""

    limits: dict[str, str | int | float] = Field(default_factory=dict)
    requests: dict[str, str | int | float] = Field(default_factory=dict)
    claims: list[dict[str, Any]] | None = None

    _gpus = field_validator("limits", "requests")(_check_gpus)


class Container(ManifestModel):
    """A container of the revision; knray reads image, env and resources."""

    name: str | None = None
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    working_dir: str | None = None
    env: list[dict[str, Any]] | None = None
    env_from: list[dict[str, Any]] | None = None
    ports: list[dict[str, Any]] | None = None
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    image_pull_policy: str | None = None
    liveness_probe: dict[str, Any] | None = None
    readiness_probe: dict[str, Any] | None = None
    startup_probe: dict[str, Any] | None = None
    security_context: dict[str, Any] | None = None
    volume_mounts: list[dict[str, Any]] | None = None
    lifecycle: dict[str, Any] | None = None
    termination_message_path: str | None = None
    termination_message_policy: str | None = None


class RevisionSpec(ManifestModel):
    """The revision's pod spec plus Knative's serving fields."""

    containers: list[Container] = Field(default_factory=list)
    container_concurrency: int | None = Field(default=None, ge=0, le=MAX_CONTAINER_CONCURRENCY)
    timeout_seconds: int | None = Field(default=None, ge=0, le=MAX_TIMEOUT_S)
    response_start_timeout_seconds: int | None = Field(default=None, ge=0, le=MAX_TIMEOUT_S)
    idle_timeout_seconds: int | None = Field(default=None, ge=0, le=MAX_TIMEOUT_S)
    # Pod-level settings: meaningless on Ray, accepted so existing manifests load unchanged.
    service_account_name: str | None = None
    image_pull_secrets: list[dict[str, Any]] | None = None
    volumes: list[dict[str, Any]] | None = None
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None
    security_context: dict[str, Any] | None = None
    enable_service_links: bool | None = None
    runtime_class_name: str | None = None
    priority_class_name: str | None = None
    scheduler_name: str | None = None
    dns_policy: str | None = None
    dns_config: dict[str, Any] | None = None
    host_aliases: list[dict[str, Any]] | None = None
    init_containers: list[dict[str, Any]] | None = None
    topology_spread_constraints: list[dict[str, Any]] | None = None
    automount_service_account_token: bool | None = None

    @model_validator(mode="after")
    def _one_container(self) -> RevisionSpec:
        if len(self.containers) > 1:
            # knray runs one handler per Service; Knative's multi-container (sidecar) pods
            # have no Ray equivalent.
            raise ValueError("knray runs one container per Service; found several in 'containers'")
        return self


class RevisionMeta(ManifestModel):
    """``spec.template.metadata``."""

    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class RevisionTemplate(ManifestModel):
    """``spec.template``: metadata (autoscaling annotations) and the revision spec."""

    metadata: RevisionMeta = Field(default_factory=RevisionMeta)
    spec: RevisionSpec = Field(default_factory=RevisionSpec)


class TrafficTarget(ManifestModel):
    """One entry of ``spec.traffic``."""

    tag: str | None = None
    revision_name: str | None = None
    configuration_name: str | None = None
    latest_revision: bool | None = None
    percent: int | None = Field(default=None, ge=0, le=100)
    url: str | None = None


class ServiceSpec(ManifestModel):
    """``spec`` of a Knative Service."""

    template: RevisionTemplate = Field(default_factory=RevisionTemplate)
    traffic: list[TrafficTarget] | None = None

    @field_validator("traffic")
    @classmethod
    def _traffic_sums_to_100(
        cls, traffic: list[TrafficTarget] | None
    ) -> list[TrafficTarget] | None:
        # serving/pkg/apis/serving/v1 route validation: percents must sum to 100.
        if traffic:
            total = sum(target.percent or 0 for target in traffic)
            if total != 100:
                raise ValueError(f"traffic percentages sum to {total}, want 100")
        return traffic


class KnativeService(Resource):
    """A Knative Service; knray runs it as a Ray Serve deployment."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = ("serving.knative.dev/v1",)
    KIND: ClassVar[str] = "Service"

    spec: ServiceSpec = Field(default_factory=ServiceSpec)

    @property
    def autoscaling(self) -> AutoscalingSpec:
        """The autoscaling annotations of the revision template, parsed."""
        return autoscaling_from_annotations(
            self.spec.template.metadata.annotations,
            container_concurrency=self.spec.template.spec.container_concurrency,
        )

    @property
    def image(self) -> str | None:
        containers = self.spec.template.spec.containers
        return containers[0].image if containers else None

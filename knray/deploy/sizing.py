"""How many worker pods the Services need: their replicas packed onto pods of one shape (pure).

Every Service contributes ``min-scale`` replicas to the minimum and ``max-scale`` replicas
(a cap when unbounded) to the maximum; replicas are packed first-fit-decreasing onto pods,
as Ray places them by resources. The head pod runs no replica (``num-cpus: 0``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from knray.errors import FieldProblem, ManifestError
from knray.manifests.resources import GPU_RESOURCE, ReplicaResources, replica_resources
from knray.manifests.service import KnativeService

__all__ = [
    "OBJECT_STORE_MEMORY_FRACTION",
    "UNBOUNDED_MAX_SCALE",
    "WorkerGroupSize",
    "WorkerShape",
    "size_worker_group",
]

# Knative's max-scale 0 means unbounded; knray's Serve mapping caps it at 100 replicas
# (knray.serving.deployment.UNBOUNDED_MAX_REPLICAS), and so does the pod count by default.
UNBOUNDED_MAX_SCALE: Final = 100
# Ray gives 30% of a node's memory to its object store by default; the rest is what tasks and
# actors reserve with ``memory``.
OBJECT_STORE_MEMORY_FRACTION: Final = 0.3
# Resources are compared in thousandths, so 0.1 + 0.2 fits in 0.3.
_MILLI: Final = 1000


@dataclass(frozen=True)
class WorkerShape:
    """The resources of one worker pod."""

    cpus: float
    memory_bytes: int
    gpus: float = 0.0

    @property
    def schedulable_memory_bytes(self) -> int:
        """Memory Ray lets actors reserve on the pod (its object store takes the rest)."""
        return int(self.memory_bytes * (1 - OBJECT_STORE_MEMORY_FRACTION))


@dataclass(frozen=True)
class WorkerGroupSize:
    """Worker pods for the Services' minimum and maximum replicas."""

    min_replicas: int
    max_replicas: int


def _units(resources: ReplicaResources) -> tuple[int, int, int]:
    return (
        math.ceil(resources.gpus * _MILLI),
        math.ceil(resources.cpus * _MILLI),
        math.ceil(resources.memory_bytes),
    )


def _pods_for(replicas: Sequence[tuple[int, int, int]], capacity: tuple[int, int, int]) -> int:
    """First-fit decreasing: the pods that hold every replica."""
    free: list[list[int]] = []
    for need in sorted(replicas, reverse=True):
        for pod in free:
            if all(n <= f for n, f in zip(need, pod, strict=True)):
                for i, n in enumerate(need):
                    pod[i] -= n
                break
        else:
            free.append([c - n for c, n in zip(capacity, need, strict=True)])
    return len(free)


def _check_fits(
    service: KnativeService, resources: ReplicaResources, shape: WorkerShape
) -> list[FieldProblem]:
    problems = []
    checks = (
        ("cpu", resources.cpus, shape.cpus, "CPUs", "--worker-cpu"),
        ("gpu", resources.gpus, shape.gpus, GPU_RESOURCE, "--worker-gpu"),
    )
    for dimension, need, have, unit, flag in checks:
        if need > have:
            path = resources.paths.get(dimension, "spec.template.spec.containers[0].resources")
            problems.append(
                FieldProblem(
                    path,
                    f"one replica needs {need:g} {unit} but a worker pod has {have:g} ({flag})",
                    service.key,
                )
            )
    if resources.memory_bytes > shape.schedulable_memory_bytes:
        problems.append(
            FieldProblem(
                resources.paths["memory"],
                f"one replica needs {resources.memory_bytes} bytes of memory but a worker pod "
                f"lets Ray place {shape.schedulable_memory_bytes} (70% of --worker-memory; "
                "the object store takes the rest)",
                service.key,
            )
        )
    return problems


def size_worker_group(
    services: Sequence[KnativeService],
    shape: WorkerShape,
    *,
    unbounded_max_scale: int = UNBOUNDED_MAX_SCALE,
) -> WorkerGroupSize:
    """Worker pods for the Services' min-scale and max-scale replicas.

    Raises ManifestError naming the field of every Service whose replica cannot fit on a pod
    (or whose resources do not parse).
    """
    if unbounded_max_scale < 1:
        raise ValueError("unbounded_max_scale must be at least 1")
    problems: list[FieldProblem] = []
    at_min: list[tuple[int, int, int]] = []
    at_max: list[tuple[int, int, int]] = []
    for service in services:
        try:
            resources = replica_resources(service)
        except ManifestError as error:
            problems.extend(error.problems)
            continue
        problems.extend(_check_fits(service, resources, shape))
        scaling = service.autoscaling
        if scaling.max_scale and scaling.max_scale < scaling.min_scale:
            # Loading refuses this already; a Service built in code reaches here.
            problems.append(
                FieldProblem(
                    "spec.template.metadata.annotations[autoscaling.knative.dev/max-scale]",
                    f"max-scale {scaling.max_scale} is below min-scale {scaling.min_scale}",
                    service.key,
                )
            )
            continue
        maximum = scaling.max_scale or max(unbounded_max_scale, scaling.min_scale)
        units = _units(resources)
        at_min.extend([units] * scaling.min_scale)
        at_max.extend([units] * maximum)
    if problems:
        raise ManifestError(problems)
    capacity = (
        math.floor(shape.gpus * _MILLI),
        math.floor(shape.cpus * _MILLI),
        shape.schedulable_memory_bytes,
    )
    minimum = _pods_for(at_min, capacity)
    return WorkerGroupSize(minimum, max(1, minimum, _pods_for(at_max, capacity)))

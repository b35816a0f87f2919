"""Kubernetes resource quantities and the resources one replica of a Service asks for (pure).

Quantities follow Kubernetes' ``resource.Quantity`` syntax: a decimal number with an optional
binary (``Ki`` .. ``Ei``), decimal (``m``, ``k``, ``M`` .. ``E``) or exponent (``e3``) suffix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from knray.errors import FieldProblem, ManifestError
from knray.manifests.annotations import NUM_GPUS_ANNOTATION
from knray.manifests.service import GPU_RESOURCES, KnativeService

__all__ = [
    "DEFAULT_REPLICA_CPUS",
    "GPU_RESOURCE",
    "ReplicaResources",
    "parse_quantity",
    "replica_resources",
]

# A replica of a Service that names no CPU gets this much: Ray Serve needs fractional CPUs
# to start several replicas on a small machine.
DEFAULT_REPLICA_CPUS: Final = 0.1
# Kubernetes' name for NVIDIA GPUs (an extended resource: whole numbers, set in limits); the
# rendered KubeRay worker pods ask for GPUs under this name.
GPU_RESOURCE: Final = "nvidia.com/gpu"

_SUFFIXES: Final = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_QUANTITY: Final = re.compile(
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<exponent>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?"
)


def parse_quantity(value: str | int | float) -> float:
    """The number a Kubernetes quantity stands for (``500m`` -> 0.5, ``1Gi`` -> 1073741824).

    Raises ValueError for anything that is not a non-negative quantity.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _QUANTITY.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"{value!r} is not a Kubernetes quantity (like 500m, 2, 1Gi)")
        number = float(match["number"])
        if match["exponent"]:
            number *= 10.0 ** int(match["exponent"][1:])
        else:
            number *= _SUFFIXES[match["suffix"] or ""]
    if number < 0:
        raise ValueError(f"{value!r} must not be negative")
    return number


@dataclass(frozen=True)
class ReplicaResources:
    """What one replica reserves: CPUs, memory in bytes and GPUs.

    ``paths`` names, for each of ``cpu``, ``memory`` and ``gpu`` that the Service sets, the
    manifest field it came from (for error messages).
    """

    cpus: float = DEFAULT_REPLICA_CPUS
    memory_bytes: int = 0
    gpus: float = 0.0
    paths: dict[str, str] = field(default_factory=dict, compare=False)


_RESOURCE_NAMES: Final = {"cpu": ("cpu",), "memory": ("memory",), "gpu": GPU_RESOURCES}


def replica_resources(service: KnativeService) -> ReplicaResources:
    """The resources one replica of ``service`` asks for.

    Read from the container's ``resources.requests``, else ``resources.limits`` (Kubernetes
    defaults requests to limits); a replica names no memory or GPU unless the Service does.
    Raises ManifestError naming the field of a quantity that does not parse.
    """
    values: dict[str, float] = {}
    paths: dict[str, str] = {}
    problems: list[FieldProblem] = []
    containers = service.spec.template.spec.containers
    if containers:
        resources = containers[0].resources
        base = "spec.template.spec.containers[0].resources"
        for dimension, names in _RESOURCE_NAMES.items():
            found = [
                (section, quantities, name)
                for section, quantities in (
                    ("requests", resources.requests),
                    ("limits", resources.limits),
                )
                for name in names
                if name in quantities
            ]
            if not found:
                continue
            section, quantities, name = found[0]
            path = f"{base}.{section}[{name}]" if "/" in name else f"{base}.{section}.{name}"
            try:
                values[dimension] = parse_quantity(quantities[name])
            except ValueError as error:
                problems.append(FieldProblem(path, str(error), service.key))
            paths[dimension] = path
    if problems:
        raise ManifestError(problems)
    gpus = values.get("gpu", 0.0)
    if gpus != int(gpus) and "gpu" in paths:
        problems.append(
            FieldProblem(paths["gpu"], f"{GPU_RESOURCE} must be a whole number", service.key)
        )
        raise ManifestError(problems)
    for source_annotations, where in (
        (service.spec.template.metadata.annotations, "spec.template.metadata.annotations"),
        (service.annotations, "metadata.annotations"),
    ):
        # knray.dev/num-gpus overrides the container's GPUs (fractions share a GPU).
        if NUM_GPUS_ANNOTATION in source_annotations:
            gpus = float(source_annotations[NUM_GPUS_ANNOTATION])
            paths["gpu"] = f"{where}[{NUM_GPUS_ANNOTATION}]"
            break
    return ReplicaResources(
        cpus=values.get("cpu", DEFAULT_REPLICA_CPUS),
        memory_bytes=int(values.get("memory", 0)),
        gpus=gpus,
        paths=paths,
    )

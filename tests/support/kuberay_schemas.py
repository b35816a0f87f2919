"""Offline validation of KubeRay (ray.io/v1) and core Kubernetes objects.

KubeRay objects are checked against the ``openAPIV3Schema`` of the CRDs' ``v1`` version (from
``../shared/kuberay-crds``) with ``jsonschema``, after two OpenAPI extensions are given their
JSON Schema meaning: ``x-kubernetes-int-or-string`` becomes "an integer or a string", and,
as ``kubectl --validate=strict`` does, an object with ``properties`` accepts no other field
unless it says ``x-kubernetes-preserve-unknown-fields`` or has ``additionalProperties``.
Core objects (ConfigMap, the pods' templates) are checked with ``kubernetes-validate``, which
carries the Kubernetes JSON schemas.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import jsonschema
import kubernetes_validate
import yaml

from tests.support.shared_data import require_shared_dir

KUBERNETES_VERSION: Final = "1.30"
_CRD_FILES: Final = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayService": "ray.io_rayservices.yaml",
}


def _to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _to_json_schema(value) for key, value in node.items()}
    if result.pop("x-kubernetes-int-or-string", False):
        result.pop("type", None)
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = result.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in result and "additionalProperties" not in result and not preserve:
        result["additionalProperties"] = False
    return result


@functools.cache
def crd_validator(kind: str) -> jsonschema.Draft7Validator:
    """A validator for ``ray.io/v1`` objects of ``kind`` (RayCluster, RayJob, RayService)."""
    path = require_shared_dir("kuberay-crds") / _CRD_FILES[kind]
    # The C loader: the CRD files are over a megabyte each.
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _to_json_schema(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def crd_errors(document: dict[str, Any]) -> list[str]:
    """Every schema violation of a KubeRay object, as ``path: message``."""
    validator = crd_validator(document["kind"])
    return sorted(
        f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(document)
    )


def core_errors(document: dict[str, Any]) -> list[str]:
    """The violation of a core Kubernetes object (strict: unknown fields too), if any."""
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'.'.join(str(p) for p in error.path)}: {error.message}"]
    return []


def pod_templates(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(group, pod template) of every head and worker group of a KubeRay object."""
    spec = document["spec"]
    cluster = spec.get("rayClusterConfig") or spec.get("rayClusterSpec") or spec
    yield "head", cluster["headGroupSpec"]["template"]
    for group in cluster.get("workerGroupSpecs", []):
        yield group["groupName"], group["template"]


def as_pod(template: dict[str, Any], name: str) -> dict[str, Any]:
    """A pod template as a Pod object, so the core schema checks its spec (env, volumes)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template.get("metadata", {}), "name": name},
        "spec": template["spec"],
    }


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]

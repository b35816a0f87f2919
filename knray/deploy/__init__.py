"""KubeRay manifests (RayService, RayJob, RayCluster) for knray manifests: pure builders."""

from knray.deploy.kuberay import (
    APP_IMPORT_PATH,
    MANIFESTS_DIR,
    ManifestFile,
    RenderKind,
    RenderOptions,
    dump_documents,
    kafka_secret_env,
    render,
)
from knray.deploy.sizing import (
    UNBOUNDED_MAX_SCALE,
    WorkerGroupSize,
    WorkerShape,
    size_worker_group,
)

__all__ = [
    "APP_IMPORT_PATH",
    "MANIFESTS_DIR",
    "UNBOUNDED_MAX_SCALE",
    "ManifestFile",
    "RenderKind",
    "RenderOptions",
    "WorkerGroupSize",
    "WorkerShape",
    "dump_documents",
    "kafka_secret_env",
    "render",
    "size_worker_group",
]

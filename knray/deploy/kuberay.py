"""KubeRay ``ray.io/v1`` manifests (RayService, RayJob, RayCluster) for a set of knray
manifests (pure: dictionaries in, dictionaries out).

What is rendered, and why:

- One head group and one worker group with KubeRay's in-tree autoscaler. The head runs no
  replica (``num-cpus: "0"``); the worker group's min/max pods hold the Services' min-scale and
  max-scale replicas (see :mod:`knray.deploy.sizing`).
- The user's manifests: for a RayJob and a RayCluster in a ConfigMap mounted on every pod at
  :data:`MANIFESTS_DIR`, read by ``knray run -f``; for a RayService inline in
  ``serveConfigV2`` (``args.manifests``), so that a changed manifest is a changed RayService,
  which KubeRay applies to the running Serve application in place.
- Kafka credentials: every ``secretKeyRef`` of a KafkaSource's ``spec.net``, and every key
  Knative reads from a Kafka Broker's ``auth.secret.ref.name`` Secret, becomes an environment
  variable ``valueFrom.secretKeyRef`` on every pod, named as knray's
  :class:`~knray.sources.kafka_security.SecretResolver` looks it up. Values are never inlined.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import yaml

from knray.broker.kafka_class import AUTH_SECRET_KEYS, kafka_broker_auth_secrets
from knray.deploy.sizing import UNBOUNDED_MAX_SCALE, WorkerShape, size_worker_group
from knray.errors import FieldProblem, ManifestError
from knray.manifests import KafkaSource, KnativeService, Resource
from knray.manifests.resources import GPU_RESOURCE, parse_quantity
from knray.manifests.sources import SecretValueFromSource

__all__ = [
    "APP_IMPORT_PATH",
    "MANIFESTS_DIR",
    "ManifestFile",
    "RenderKind",
    "RenderOptions",
    "dump_documents",
    "kafka_secret_env",
    "render",
]

API_VERSION: Final = "ray.io/v1"
MANIFESTS_DIR: Final = "/etc/knray/manifests"
APP_IMPORT_PATH: Final = "knray.runtime.app:build"
APP_NAME: Final = "knray"
# Mirrors knray.sources.kafka_security.SecretResolver.env_name (that module imports aiokafka's
# neighbours; this one stays pure). A test checks the two agree.
_SECRET_ENV_PREFIX: Final = "KNRAY_SECRET_"
_NOT_ALNUM: Final = re.compile(r"[^A-Z0-9]")
_DNS_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_CONFIG_KEY: Final = re.compile(r"[-._a-zA-Z0-9]+")
# Kubernetes' limit on a ConfigMap's data (and near etcd's limit on any object).
_MAX_CONFIG_MAP_BYTES: Final = 1024 * 1024
# A RayCluster's name becomes part of its pods' and Services' names; KubeRay's limit.
_MAX_NAME_LENGTH: Final = 47


class RenderKind(StrEnum):
    """The KubeRay resource to render."""

    RAYSERVICE = "rayservice"
    RAYJOB = "rayjob"
    RAYCLUSTER = "raycluster"


@dataclass(frozen=True)
class ManifestFile:
    """One of the user's manifest files: a ConfigMap key and its text."""

    key: str
    text: str


@dataclass(frozen=True)
class RenderOptions:
    """Everything ``knray kuberay render`` takes besides the manifests."""

    kind: RenderKind
    name: str
    namespace: str = "default"
    image: str = "knray:latest"
    ray_version: str = "2.60.0"
    head_cpu: str = "1"
    head_memory: str = "4Gi"
    worker_cpu: str = "2"
    worker_memory: str = "4Gi"
    worker_gpu: int = 0
    unbounded_max_scale: int = UNBOUNDED_MAX_SCALE
    bootstrap_servers: str | None = None
    dispatchers_per_broker: int = 2
    # How long `ray job stop` (and KubeRay stopping a RayJob) waits before SIGKILL.
    job_stop_wait_s: int = 60


def kafka_secret_env(resources: Sequence[Resource]) -> list[dict[str, Any]]:
    """``env`` entries (``valueFrom.secretKeyRef``) for every Secret key a KafkaSource's
    ``spec.net`` references and every key of a Kafka Broker's auth Secret (all optional but
    ``protocol``: which are there depends on the protocol), sorted and without duplicates."""
    refs: dict[str, dict[str, Any]] = {}

    def add(name: str, key: str, optional: bool | None) -> None:
        env_name = _SECRET_ENV_PREFIX + _NOT_ALNUM.sub("_", f"{name}_{key}".upper())
        ref: dict[str, Any] = {"name": name, "key": key}
        if optional:
            ref["optional"] = True
        previous = refs.get(env_name)
        if previous is None or previous.get("optional", False):
            refs[env_name] = ref  # a required reference wins over an optional one

    for secret in kafka_broker_auth_secrets(resources):
        for key in AUTH_SECRET_KEYS:
            add(secret, key, optional=key != "protocol")
    for resource in resources:
        if not isinstance(resource, KafkaSource):
            continue
        net = resource.spec.net
        # Knative reads the SASL and TLS references only when that part is enabled; a pod
        # must not wait for a Secret that nothing reads.
        values: list[SecretValueFromSource | None] = []
        if net.sasl.enable:
            values += [net.sasl.user, net.sasl.password, net.sasl.type]
        if net.tls.enable:
            values += [net.tls.ca_cert, net.tls.cert, net.tls.key]
        for value in values:
            if value is not None and value.secret_key_ref is not None:
                selector = value.secret_key_ref
                add(selector.name, selector.key, selector.optional)
    return [
        {"name": name, "valueFrom": {"secretKeyRef": ref}} for name, ref in sorted(refs.items())
    ]


def _check_options(options: RenderOptions) -> list[FieldProblem]:
    problems = []
    if len(options.name) > _MAX_NAME_LENGTH or not _DNS_LABEL.fullmatch(options.name):
        problems.append(
            FieldProblem(
                "--name",
                f"{options.name!r} must be a DNS label of at most {_MAX_NAME_LENGTH} "
                "characters (lower case letters, digits and '-')",
            )
        )
    if not _DNS_LABEL.fullmatch(options.namespace):
        problems.append(FieldProblem("--namespace", f"{options.namespace!r} is not a DNS label"))
    for flag, value in (
        ("--head-cpu", options.head_cpu),
        ("--head-memory", options.head_memory),
        ("--worker-cpu", options.worker_cpu),
        ("--worker-memory", options.worker_memory),
    ):
        try:
            if parse_quantity(value) <= 0:
                problems.append(FieldProblem(flag, f"{value!r} must be more than zero"))
        except ValueError as error:
            problems.append(FieldProblem(flag, str(error)))
    if options.worker_gpu < 0:
        problems.append(FieldProblem("--worker-gpu", "must not be negative"))
    if options.unbounded_max_scale < 1:
        problems.append(FieldProblem("--unbounded-max-scale", "must be at least 1"))
    if options.job_stop_wait_s < 1:
        problems.append(FieldProblem("--job-stop-wait-s", "must be at least 1"))
    if options.dispatchers_per_broker < 1:
        problems.append(FieldProblem("--dispatchers", "must be at least 1"))
    if not options.image.strip():
        problems.append(FieldProblem("--image", "must not be empty"))
    return problems


def _resources(cpu: str, memory: str, gpu: int = 0) -> dict[str, Any]:
    quantities: dict[str, Any] = {"cpu": cpu, "memory": memory}
    limits = dict(quantities)
    if gpu:
        limits[GPU_RESOURCE] = gpu
    return {"requests": quantities, "limits": limits}


def _container(
    name: str,
    options: RenderOptions,
    resources: dict[str, Any],
    env: list[dict[str, Any]],
    *,
    ports: list[dict[str, Any]] | None = None,
    mount_manifests: bool,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": options.image,
        "resources": resources,
    }
    if ports:
        container["ports"] = ports
    if env:
        container["env"] = env
    if mount_manifests:
        container["volumeMounts"] = [
            {"name": "knray-manifests", "mountPath": MANIFESTS_DIR, "readOnly": True}
        ]
    return container


def _pod_spec(container: dict[str, Any], options: RenderOptions, mount: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [container]}
    if mount:
        spec["volumes"] = [
            {"name": "knray-manifests", "configMap": {"name": _config_map_name(options)}}
        ]
    return spec


def _config_map_name(options: RenderOptions) -> str:
    return f"{options.name}-manifests"


def _ray_cluster_spec(
    resources: Sequence[Resource], options: RenderOptions, *, mount: bool
) -> dict[str, Any]:
    services = [r for r in resources if isinstance(r, KnativeService)]
    shape = WorkerShape(
        cpus=parse_quantity(options.worker_cpu),
        memory_bytes=int(parse_quantity(options.worker_memory)),
        gpus=float(options.worker_gpu),
    )
    size = size_worker_group(services, shape, unbounded_max_scale=options.unbounded_max_scale)
    env = kafka_secret_env(resources)
    head_ports = [
        {"name": "gcs-server", "containerPort": 6379},
        {"name": "dashboard", "containerPort": 8265},
        {"name": "client", "containerPort": 10001},
        {"name": "serve", "containerPort": 8000},
    ]
    head = _container(
        "ray-head",
        options,
        _resources(options.head_cpu, options.head_memory),
        env,
        ports=head_ports,
        mount_manifests=mount,
    )
    worker = _container(
        "ray-worker",
        options,
        _resources(options.worker_cpu, options.worker_memory, options.worker_gpu),
        env,
        mount_manifests=mount,
    )
    return {
        "rayVersion": options.ray_version,
        "enableInTreeAutoscaling": True,
        "autoscalerOptions": {"upscalingMode": "Default", "idleTimeoutSeconds": 60},
        "headGroupSpec": {
            # The head runs Ray's control plane, the Serve controller and knray's dispatcher
            # and source actors (zero CPUs each); Service replicas go to the workers.
            "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": {"spec": _pod_spec(head, options, mount)},
        },
        "workerGroupSpecs": [
            {
                "groupName": "workers",
                "replicas": size.min_replicas,
                "minReplicas": size.min_replicas,
                "maxReplicas": size.max_replicas,
                "rayStartParams": {},
                "template": {"spec": _pod_spec(worker, options, mount)},
            }
        ],
    }


def _metadata(options: RenderOptions, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": options.namespace,
        "labels": {"app.kubernetes.io/name": options.name, "app.kubernetes.io/part-of": "knray"},
    }


def _config_map(files: Sequence[ManifestFile], options: RenderOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(options, _config_map_name(options)),
        "data": {file.key: file.text for file in files},
    }


def _run_arguments(options: RenderOptions) -> list[str]:
    arguments = ["--no-status"]
    if options.bootstrap_servers:
        arguments += ["--bootstrap-servers", options.bootstrap_servers]
    if options.dispatchers_per_broker != 2:
        arguments += ["--dispatchers", str(options.dispatchers_per_broker)]
    return arguments


def _entrypoint(options: RenderOptions) -> str:
    return " ".join(["knray", "run", "-f", MANIFESTS_DIR, *_run_arguments(options)])


def _serve_config(files: Sequence[ManifestFile], options: RenderOptions) -> str:
    manifests = "---\n".join(
        f"# {file.key}\n{file.text if file.text.endswith(chr(10)) else file.text + chr(10)}"
        for file in files
    )
    args: dict[str, Any] = {
        "manifests": manifests,
        "dispatchers_per_broker": options.dispatchers_per_broker,
    }
    if options.bootstrap_servers:
        args["bootstrap_servers"] = options.bootstrap_servers
    config = {
        "applications": [
            {
                "name": APP_NAME,
                "import_path": APP_IMPORT_PATH,
                "route_prefix": "/knray",
                "args": args,
            }
        ]
    }
    return _dump(config)


def _check_files(files: Sequence[ManifestFile]) -> list[FieldProblem]:
    problems = []
    size = sum(len(file.key.encode()) + len(file.text.encode()) for file in files)
    if size > _MAX_CONFIG_MAP_BYTES:
        problems.append(
            FieldProblem("", f"the manifests take {size} bytes; a ConfigMap holds at most 1 MiB")
        )
    seen: set[str] = set()
    for file in files:
        if not _CONFIG_KEY.fullmatch(file.key):
            problems.append(FieldProblem("", f"{file.key!r} is not a valid ConfigMap key"))
        if file.key in seen:
            problems.append(FieldProblem("", f"two manifest files map to the key {file.key!r}"))
        seen.add(file.key)
    return problems


def render(
    resources: Sequence[Resource], files: Sequence[ManifestFile], options: RenderOptions
) -> list[dict[str, Any]]:
    """The Kubernetes objects that run ``resources`` on KubeRay, in apply order.

    ``files`` are the manifest files ``resources`` were loaded from (carried to the cluster
    as they are). Raises ManifestError naming every bad field or option.
    """
    problems = _check_options(options) + _check_files(files)
    if problems:
        raise ManifestError(problems)
    if options.kind is RenderKind.RAYSERVICE:
        spec: dict[str, Any] = {
            "serveConfigV2": _serve_config(files, options),
            "rayClusterConfig": _ray_cluster_spec(resources, options, mount=False),
        }
        return [
            {
                "apiVersion": API_VERSION,
                "kind": "RayService",
                "metadata": _metadata(options, options.name),
                "spec": spec,
            }
        ]
    cluster = _ray_cluster_spec(resources, options, mount=True)
    config_map = _config_map(files, options)
    if options.kind is RenderKind.RAYCLUSTER:
        return [
            config_map,
            {
                "apiVersion": API_VERSION,
                "kind": "RayCluster",
                "metadata": _metadata(options, options.name),
                "spec": cluster,
            },
        ]
    runtime_env = {
        # `ray job stop` (and KubeRay stopping the job) sends SIGTERM, then SIGKILL after this
        # many seconds: long enough to drain in-flight events and commit their offsets.
        "env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(options.job_stop_wait_s)},
    }
    job_spec: dict[str, Any] = {
        "entrypoint": _entrypoint(options),
        "runtimeEnvYAML": _dump(runtime_env),
        # A streaming system runs until stopped; its cluster goes with it.
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": 60,
        "rayClusterSpec": cluster,
    }
    return [
        config_map,
        {
            "apiVersion": API_VERSION,
            "kind": "RayJob",
            "metadata": _metadata(options, options.name),
            "spec": job_spec,
        },
    ]


def _dump(value: Any) -> str:
    return yaml.dump(value, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False)


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as ``|`` blocks, so embedded manifests stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_BlockDumper.add_representer(str, _represent_str)


def dump_documents(documents: Sequence[dict[str, Any]], header: str = "") -> str:
    """The objects as one multi-document YAML text, with ``header`` as leading comments."""
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + "---\n".join(_dump(document) for document in documents)

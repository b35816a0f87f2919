"""A Knative Service as a Ray Serve application: one deployment running its handler, scaled
by knray's KPA policy on events in flight."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Final

from knray.manifests.resources import replica_resources
from knray.manifests.scaling import AutoscalingSpec
from knray.manifests.service import KnativeService
from knray.serving import kpa
from knray.serving.handlers import (
    MAIN_MODULE,
    handler_spec_for_service,
    import_handler_target,
    load_handler,
)
from knray.serving.kpa import KpaParams

__all__ = [
    "DEFAULT_MAX_ONGOING_REQUESTS",
    "DEFAULT_NUM_CPUS",
    "POLICY_FUNCTION",
    "UNBOUNDED_MAX_REPLICAS",
    "app_name",
    "autoscaling_config",
    "build_application",
    "delete_service",
    "delete_services",
    "deploy_service",
    "kpa_params",
    "num_cpus",
    "num_gpus",
    "ray_actor_options",
]

DEFAULT_NUM_CPUS: Final = 0.1
# Serve needs a finite max_replicas; Knative's max-scale 0 (unbounded) maps to this.
UNBOUNDED_MAX_REPLICAS: Final = 100
# Calls (each a chunk of events) one replica accepts; the rest would wait in handles, unseen
# by the events-in-flight metric, so this is large.
DEFAULT_MAX_ONGOING_REQUESTS: Final = 1000
POLICY_FUNCTION: Final = "knray.serving.policy:KnativeAutoscalingPolicy"
METRICS_INTERVAL_S: Final = 1.0
LOOK_BACK_PERIOD_S: Final = 2.0
_DELETE_POLL_S: Final = 0.2


def app_name(service: KnativeService) -> str:
    """The Serve application (and deployment) name of a Service: ``namespace.name``."""
    return f"{service.namespace}.{service.name}"


def _cpu_quantity(value: str | int | float) -> float:
    text = str(value).strip()
    if text.endswith("m"):
        return float(text[:-1]) / 1000.0
    return float(text)


def num_cpus(service: KnativeService) -> float:
    """CPUs per replica: the container's ``resources.requests.cpu`` (else limits), default 0.1."""
    containers = service.spec.template.spec.containers
    if containers:
        resources = containers[0].resources
        for quantities in (resources.requests, resources.limits):
            if "cpu" in quantities:
                return _cpu_quantity(quantities["cpu"])
    return DEFAULT_NUM_CPUS


def num_gpus(service: KnativeService) -> float:
    """GPUs per replica: the ``knray.dev/num-gpus`` annotation (revision template first, then
    the Service; fractions share a GPU), else the container's ``nvidia.com/gpu`` (or
    ``amd.com/gpu``) request, else limit; 0 when none is set."""
    return replica_resources(service).gpus


def ray_actor_options(service: KnativeService) -> dict[str, Any]:
    """What each replica reserves in Ray: ``num_cpus``, and ``num_gpus`` and ``memory`` (bytes)
    when the container asks for ``nvidia.com/gpu`` or memory, so that Ray's placement and
    KubeRay's autoscaler (``knray kuberay render``) see the same replica."""
    options: dict[str, Any] = {"num_cpus": num_cpus(service)}
    resources = replica_resources(service)
    if resources.gpus:
        options["num_gpus"] = resources.gpus
    if resources.memory_bytes:
        options["memory"] = resources.memory_bytes
    return options


def kpa_params(spec: AutoscalingSpec) -> KpaParams:
    """The policy's parameters for a Service's autoscaling settings."""
    return KpaParams(
        target_per_replica=spec.target_events_per_replica,
        min_scale=spec.min_scale,
        max_scale=spec.max_scale,
        window_s=spec.window_s,
        panic_window_s=spec.panic_window_s,
        panic_threshold=spec.panic_threshold_percentage / 100.0,
        scale_down_delay_s=spec.scale_down_delay_s,
        retention_s=spec.scale_to_zero_pod_retention_period_s,
    )


def autoscaling_config(spec: AutoscalingSpec) -> dict[str, Any]:
    """Serve's AutoscalingConfig fields for a Service (the policy itself excluded).

    The KPA policy does the delays itself, so Serve's own delays are zero; Serve's bounds
    are set too so its clamping agrees with the policy's.
    """
    max_replicas = spec.max_scale or max(UNBOUNDED_MAX_REPLICAS, spec.min_scale)
    initial = min(max(spec.initial_scale, spec.min_scale), max_replicas)
    return {
        "min_replicas": spec.min_scale,
        "max_replicas": max_replicas,
        "initial_replicas": initial,
        "upscale_delay_s": 0.0,
        "downscale_delay_s": 0.0,
        "downscale_to_zero_delay_s": 0.0,
        "metrics_interval_s": METRICS_INTERVAL_S,
        "look_back_period_s": LOOK_BACK_PERIOD_S,
    }


@contextlib.contextmanager
def _pickle_policy_by_value() -> Iterator[None]:
    # Serve cloudpickles the policy module by value; the stdlib-only decision module goes with
    # it, so the controller never imports knray (an import failure there wedges Serve).
    import ray.cloudpickle  # noqa: PLC0415

    cloudpickle: Any = ray.cloudpickle
    cloudpickle.register_pickle_by_value(kpa)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(kpa)


def _policy(kwargs: dict[str, Any]) -> Any:
    from ray.serve import config  # noqa: PLC0415

    autoscaling_policy: Any = config.AutoscalingPolicy

    with _pickle_policy_by_value():
        return autoscaling_policy(policy_function=POLICY_FUNCTION, policy_kwargs=kwargs)


def build_application(
    service: KnativeService,
    *,
    search_path: Sequence[str] | None = None,
    max_ongoing_requests: int = DEFAULT_MAX_ONGOING_REQUESTS,
    runtime_env: dict[str, Any] | None = None,
    policy_kwargs: dict[str, Any] | None = None,
) -> Any:
    """The Serve application (a bound deployment) running ``service``.

    ``search_path`` is prepended to ``sys.path`` in each replica (default: this process's
    current directory, so handlers in the project import as they do here). ``policy_kwargs``
    overrides the KPA policy's parameters (for experiments and tests).
    """
    from ray import serve  # noqa: PLC0415
    from ray.serve.config import AutoscalingConfig  # noqa: PLC0415

    from knray.serving.replica import ServiceReplica  # noqa: PLC0415

    name = app_name(service)
    spec = service.autoscaling
    handler = handler_spec_for_service(service)
    kwargs = kpa_params(spec).to_dict() if policy_kwargs is None else dict(policy_kwargs)
    with warnings.catch_warnings():
        # metrics_interval_s is deprecated, but in Ray 2.60 it is the only way to set the
        # metric push interval (the documented environment variables are not read).
        warnings.filterwarnings("ignore", ".*metrics_interval_s", DeprecationWarning)
        config = AutoscalingConfig(**autoscaling_config(spec), policy=_policy(kwargs))
    actor_options = ray_actor_options(service)
    if runtime_env:
        actor_options["runtime_env"] = runtime_env
    if spec.container_concurrency > 0:
        max_ongoing_requests = max(spec.container_concurrency, min(max_ongoing_requests, 100))
    make_deployment: Any = serve.deployment
    deployment = make_deployment(ServiceReplica).options(
        name=name,
        autoscaling_config=config,
        max_ongoing_requests=max_ongoing_requests,
        ray_actor_options=actor_options,
        # One access-log line per batch call is noise next to the handler's own output.
        logging_config={"enable_access_log": False},
    )
    paths = list(search_path) if search_path is not None else [os.getcwd()]
    handler_argument: object = handler
    if handler.partition(":")[0] == MAIN_MODULE:
        # Defined in this process (a notebook or script): replicas cannot import it, so the
        # object itself goes to them (Ray pickles __main__ functions and classes by value,
        # with the globals they use).
        handler_argument = import_handler_target(handler, service=name)
    return deployment.bind(name, handler_argument, spec.container_concurrency, paths)


def deploy_service(
    service: KnativeService,
    *,
    validate: bool = True,
    search_path: Sequence[str] | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> Any:
    """Deploy (or update) ``service`` as a Serve application; return its DeploymentHandle.

    With ``validate``, the handler is loaded here first, so a bad handler fails fast with a
    HandlerLoadError instead of failing replicas. Does not block on traffic.
    """
    from ray import serve  # noqa: PLC0415

    if validate:
        handler = handler_spec_for_service(service)
        load_handler(handler, service=f"{service.namespace}/{service.name}", instantiate=False)
    application = build_application(service, search_path=search_path, runtime_env=runtime_env)
    name = app_name(service)
    return serve.run(application, name=name, route_prefix=None, blocking=False)


def delete_service(service: KnativeService | str) -> None:
    """Delete the Serve application of ``service`` (a Service or its application name)."""
    from ray import serve  # noqa: PLC0415

    name = service if isinstance(service, str) else app_name(service)
    serve.delete(name, _blocking=True)


def delete_services(names: Sequence[str], *, timeout_s: float = 60.0) -> list[str]:
    """Delete Serve applications all at once; return those still present after ``timeout_s``.

    The deletions are requested before any is awaited: Serve's controller carries them out
    even if this process is killed meanwhile (``ray job stop`` SIGKILLs after a grace), and
    applications go down together rather than one after another.
    """
    from ray import serve  # noqa: PLC0415

    for name in names:
        serve.delete(name, _blocking=False)
    deadline = time.monotonic() + timeout_s
    remaining = list(names)
    while remaining:
        present = serve.status().applications
        remaining = [name for name in remaining if name in present]
        if not remaining or time.monotonic() > deadline:
            break
        time.sleep(_DELETE_POLL_S)
    return remaining

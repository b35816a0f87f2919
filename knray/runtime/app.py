"""A whole knray system as one Ray Serve application: the entry point of a KubeRay RayService.

``serveConfigV2`` names ``import_path: knray.runtime.app:build`` and passes the manifests in
``args``. The application holds one deployment per Knative Service (the subscribers, scaled
by knray's policy as with ``knray run``) and an ingress deployment, ``knray``, whose single
replica starts the Brokers' dispatcher actors and the sources' consumer actors, replaces the
ones that die (on each Serve health check), answers HTTP GET with the live status, and
drains and commits when Serve stops it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Final

import ray
from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve

from knray.manifests import Resource, parse_manifests
from knray.runtime.names import RAY_NAMESPACE, broker_actor_name, source_actor_name
from knray.runtime.plan import Plan, build_plan
from knray.runtime.runtime import Runtime
from knray.serving.deployment import app_name, build_application
from knray.serving.handlers import handler_spec_for_service, load_handler
from knray.sources.registry import consumer_count

__all__ = ["INGRESS_DEPLOYMENT", "AppArgs", "KnrayIngress", "build"]

_log = logging.getLogger(__name__)
INGRESS_DEPLOYMENT: Final = "knray"
# Serve waits this long for the ingress to drain in-flight events and commit offsets.
GRACEFUL_SHUTDOWN_S: Final = 60.0
_NAME_POLL_S: Final = 0.5


class AppArgs(BaseModel):
    """The application's ``args``: the manifests, as YAML text or as paths on the nodes."""

    model_config = ConfigDict(extra="forbid")

    manifests: str = ""
    paths: list[str] = Field(default_factory=list)
    bootstrap_servers: str | None = None
    dispatchers_per_broker: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _some_manifests(self) -> AppArgs:
        if not self.manifests.strip() and not self.paths:
            raise ValueError("args: give the manifests as 'manifests' (YAML text) or 'paths'")
        return self

    def resources(self) -> list[Resource]:
        """Every resource of ``manifests`` and ``paths``; ManifestError names bad fields."""
        loaded: list[Resource] = []
        if self.manifests.strip():
            loaded.extend(parse_manifests(self.manifests).resources)
        for path in self.paths:
            loaded.extend(parse_manifests(Path(path)).resources)
        return loaded


def _actor_names(plan: Plan, dispatchers: int) -> list[str]:
    names = [broker_actor_name(b.key, i) for b in plan.brokers for i in range(dispatchers)]
    for source in plan.sources:
        names += [source_actor_name(source.key, i) for i in range(consumer_count(source.source))]
    return names


def _wait_until_gone(names: list[str], timeout_s: float) -> None:
    """Wait for a previous ingress replica's actors (same names) to go; kill what stays.

    Serve may start the new replica of an updated application while the old one drains.
    """
    deadline = time.monotonic() + timeout_s
    for name in names:
        while True:
            try:
                handle = ray.get_actor(name, namespace=RAY_NAMESPACE)
            except ValueError:
                break
            if time.monotonic() > deadline:
                _log.warning("actor %s outlived its replica: killing it", name)
                ray.kill(handle)
                time.sleep(_NAME_POLL_S)
                continue
            time.sleep(_NAME_POLL_S)


class KnrayIngress:
    """The application's ingress: runs the Brokers and sources of the manifests."""

    def __init__(self, args: dict[str, Any], subscribers: dict[str, Any]) -> None:
        logging.basicConfig(level=logging.INFO)
        settings = AppArgs.model_validate(args)
        resources = settings.resources()
        # Serve resolved ``subscribers`` to handles of the deployments it created for the
        # Services; the dispatchers find them by application and deployment name.
        self._subscribers = subscribers
        application = serve.get_replica_context().app_name
        self._lock = threading.Lock()
        self._runtime = Runtime(
            dispatchers_per_broker=settings.dispatchers_per_broker,
            bootstrap_servers=settings.bootstrap_servers,
            services_application=application,
        )
        plan = build_plan(resources)
        _wait_until_gone(_actor_names(plan, settings.dispatchers_per_broker), GRACEFUL_SHUTDOWN_S)
        self._runtime.apply(resources)

    def check_health(self) -> None:
        """Serve's periodic health check: replace dead dispatcher and consumer actors."""
        with self._lock:
            for name in self._runtime.heal():
                _log.warning("replaced dead actor %s", name)

    def status(self) -> dict[str, Any]:
        """Counters of every source, trigger and Service (``Runtime.status``)."""
        with self._lock:
            return self._runtime.status()

    def __call__(self, request: Any) -> dict[str, Any]:
        """HTTP GET on the route prefix: the status as JSON."""
        return self.status()

    def __del__(self) -> None:
        # Serve calls this when it stops the replica: drain in-flight events, commit offsets.
        runtime = getattr(self, "_runtime", None)
        if runtime is not None:
            with self._lock:
                runtime.shutdown(drain=True)


def build(args: dict[str, Any]) -> Any:
    """The Serve application of ``args`` (see :class:`AppArgs`): ``import_path`` target.

    Invalid manifests raise ManifestError here, so Serve reports them as a failed deploy
    before anything starts.
    """
    settings = AppArgs.model_validate(args)
    plan = build_plan(settings.resources())
    for planned in plan.services:
        # A handler that does not import fails the deploy here, not in every replica.
        service = planned.service
        handler = handler_spec_for_service(service)
        load_handler(handler, service=f"{service.namespace}/{service.name}", instantiate=False)
    subscribers = {app_name(s.service): build_application(s.service) for s in plan.services}
    make_deployment: Any = serve.deployment
    ingress = make_deployment(KnrayIngress).options(
        name=INGRESS_DEPLOYMENT,
        num_replicas=1,
        ray_actor_options={"num_cpus": 0},
        graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
        health_check_period_s=10,
        health_check_timeout_s=60,
    )
    return ingress.bind(settings.model_dump(), subscribers)

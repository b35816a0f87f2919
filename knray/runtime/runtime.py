"""The reconciler: manifests in, running Serve deployments and Ray actors out.

``Runtime.apply(resources)`` makes the cluster match the manifests (creating, updating and
removing what changed); ``status()`` gathers live counters; ``shutdown()`` drains in-flight
events, commits offsets and removes everything it started.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import serve

from knray.errors import FieldProblem, ManifestError
from knray.manifests import Resource
from knray.runtime.actors import BrokerActor, SourceActor
from knray.runtime.names import RAY_NAMESPACE, broker_actor_name, source_actor_name
from knray.runtime.plan import Plan, ServicePlan, SourcePlan, build_plan
from knray.serving import delete_service, deploy_service
from knray.serving.deployment import app_name
from knray.sources.registry import SourceUnavailableError, consumer_count, consumer_factory

__all__ = ["Runtime", "connect"]

_log = logging.getLogger(__name__)
_STOP_TIMEOUT_S = 60.0
_PING_TIMEOUT_S = 10.0


def connect(
    address: str | None = None, *, working_dir: str | None = None, log_to_driver: bool = True
) -> None:
    """Connect to the Ray cluster at ``address``, or start a local one when None.

    With an address, the working directory is shipped to the workers (Ray ``runtime_env``
    ``working_dir``) so handler modules import there as they do here.
    """
    if ray.is_initialized():
        return
    cwd = working_dir or os.getcwd()
    if address:
        runtime_env = {
            "working_dir": cwd,
            "excludes": [".git", ".venv", "venv", "__pycache__", "*.pyc", ".mypy_cache"],
        }
        ray.init(
            address=address,
            namespace=RAY_NAMESPACE,
            runtime_env=runtime_env,
            log_to_driver=log_to_driver,
        )
    else:
        ray.init(
            namespace=RAY_NAMESPACE,
            include_dashboard=False,
            log_to_driver=log_to_driver,
            configure_logging=False,
            runtime_env={"env_vars": {"RAY_ENABLE_AUTO_CONNECT": "0"}},
        )


@dataclass
class _Running:
    plan: Plan = field(default_factory=Plan)
    brokers: dict[str, list[Any]] = field(default_factory=dict)
    sources: dict[str, list[Any]] = field(default_factory=dict)
    services: dict[str, ServicePlan] = field(default_factory=dict)


class Runtime:
    """Runs a set of Knative manifests on the connected Ray cluster."""

    def __init__(
        self,
        *,
        dispatchers_per_broker: int = 2,
        bootstrap_servers: str | None = None,
        consumer_options: dict[str, Any] | None = None,
        source_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """``bootstrap_servers`` and ``consumer_options`` apply to KafkaSources (the latter
        are KafkaConsumer keywords); ``source_options`` maps a source kind to its consumer's
        keywords, e.g. ``{"PingSource": {"clock": ScaledClock.starting_now(60)}}``."""
        if dispatchers_per_broker < 1:
            raise ValueError("dispatchers_per_broker must be at least 1")
        self.dispatchers_per_broker = dispatchers_per_broker
        self.bootstrap_servers = bootstrap_servers
        self.consumer_options = consumer_options or {}
        self.source_options = {kind: dict(o) for kind, o in (source_options or {}).items()}
        self._running = _Running()

    # --- apply ---------------------------------------------------------------------------
    def apply(self, resources: Sequence[Resource]) -> Plan:
        """Make the cluster run ``resources``; returns the plan that now runs."""
        plan = build_plan(resources)
        unavailable = []
        for planned in plan.sources:
            try:
                consumer_factory(planned.source.KIND)
            except SourceUnavailableError as error:
                unavailable.append(FieldProblem("kind", str(error), planned.key))
        if unavailable:
            raise ManifestError(unavailable)
        old = self._running.plan
        services = {s.key: s for s in plan.services}
        self._apply_services(old, plan)
        self._apply_brokers(old, plan, services)
        self._apply_sources(old, plan, services)
        self._running.plan = plan
        self._running.services = services
        self.heal()
        return plan

    def _apply_services(self, old: Plan, new: Plan) -> None:
        if new.services and not old.services:
            # knray calls deployments through handles only: no HTTP proxy to feed (it costs a
            # process and CPU). A Serve instance already running keeps its own settings.
            serve.start(proxy_location="Disabled")
        for planned in new.services:
            previous = old.service(planned.key)
            if previous is None or previous.service != planned.service:
                _log.info("deploying Service %s", planned.key)
                deploy_service(planned.service)
        for previous in old.services:
            if new.service(previous.key) is None:
                _log.info("deleting Service %s", previous.key)
                delete_service(app_name(previous.service))

    def _apply_brokers(self, old: Plan, new: Plan, services: dict[str, ServicePlan]) -> None:
        remote_broker: Any = ray.remote(BrokerActor)
        for planned in new.brokers:
            handles = self._running.brokers.get(planned.key)
            if handles is None:
                handles = [
                    remote_broker.options(
                        name=broker_actor_name(planned.key, i),
                        namespace=RAY_NAMESPACE,
                        num_cpus=0,
                        max_concurrency=1000,
                    ).remote(planned, services, self.dispatchers_per_broker)
                    for i in range(self.dispatchers_per_broker)
                ]
                ray.get([h.ready.remote() for h in handles])
                self._running.brokers[planned.key] = handles
            elif old.broker(planned.key) != planned:
                ray.get([h.update.remote(planned, services) for h in handles])
        for previous in old.brokers:
            if new.broker(previous.key) is None:
                for handle in self._running.brokers.pop(previous.key, []):
                    ray.kill(handle)

    def _apply_sources(self, old: Plan, new: Plan, services: dict[str, ServicePlan]) -> None:
        old_sources = {s.key: s for s in old.sources}
        new_sources = {s.key: s for s in new.sources}
        for key, previous in old_sources.items():
            if new_sources.get(key) != previous:
                self._stop_source(key)
        for key, planned in new_sources.items():
            if key in self._running.sources:
                continue
            handles = [
                self._source_actor(planned, i, services)
                for i in range(consumer_count(planned.source))
            ]
            ray.get([h.start.remote() for h in handles])
            self._running.sources[key] = handles

    def _source_actor(
        self, planned: SourcePlan, index: int, services: dict[str, ServicePlan]
    ) -> Any:
        remote_source: Any = ray.remote(SourceActor)
        return remote_source.options(
            name=source_actor_name(planned.key, index),
            namespace=RAY_NAMESPACE,
            num_cpus=0,
            max_concurrency=100,
        ).remote(planned, services, self.dispatchers_per_broker, index, self._options(planned))

    def _options(self, planned: SourcePlan) -> dict[str, Any]:
        kind = planned.source.KIND
        options = dict(self.source_options.get(kind, {}))
        if kind == "KafkaSource":
            options = {**self.consumer_options, **options}
            if self.bootstrap_servers:
                options["bootstrap_servers"] = self.bootstrap_servers
        return options

    def heal(self) -> list[str]:
        """Replace the source actors that died (killed, crashed, node lost) with new ones of
        the same name; they rejoin the consumer group and resume from the committed offsets.
        Returns the names of the replaced actors. ``apply()`` heals too."""
        replaced: list[str] = []
        sources = {s.key: s for s in self._running.plan.sources}
        for key, handles in self._running.sources.items():
            for index, handle in enumerate(handles):
                if _alive(handle):
                    continue
                name = source_actor_name(key, index)
                _log.warning("source actor %s died: starting a replacement", name)
                replacement = self._source_actor(sources[key], index, self._running.services)
                ray.get(replacement.start.remote())
                handles[index] = replacement
                replaced.append(name)
        return replaced

    def _stop_source(self, key: str, *, drain: bool = True) -> list[dict[str, Any]]:
        handles = self._running.sources.pop(key, [])
        stats: list[dict[str, Any]] = []
        try:
            stats = ray.get([h.stop.remote(drain) for h in handles], timeout=_STOP_TIMEOUT_S)
        except Exception:  # stop what can be stopped, say what failed
            _log.exception("source %s did not stop cleanly", key)
        for handle in handles:
            ray.kill(handle)
        return stats

    # --- observe -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Counters of every source, trigger and service, as plain dicts."""
        sources: dict[str, dict[str, Any]] = {}
        for key, handles in self._running.sources.items():
            sources[key] = _sum_counters([_stats_or_dead(h) for h in handles])
        triggers: dict[str, dict[str, Any]] = {}
        for handles in self._running.brokers.values():
            for stats in ray.get([h.stats.remote() for h in handles]):
                for route, counters in stats.get("routes", {}).items():
                    triggers[route] = _sum_counters([triggers.get(route, {}), counters])
        return {"sources": sources, "triggers": triggers, "services": self.service_status()}

    def service_status(self) -> dict[str, dict[str, Any]]:
        """Replicas and state of each Service's Serve deployment."""
        result: dict[str, dict[str, Any]] = {}
        try:
            applications = serve.status().applications
        except Exception:  # Serve not started yet
            applications = {}
        for key, planned in self._running.services.items():
            name = app_name(planned.service)
            application = applications.get(name)
            replicas = 0
            state = "missing"
            if application is not None:
                state = str(application.status)
                for deployment in application.deployments.values():
                    states: dict[Any, int] = dict(deployment.replica_states)
                    replicas += sum(n for s, n in states.items() if str(s).endswith("RUNNING"))
            target = planned.service.autoscaling
            result[key] = {
                "replicas": replicas,
                "target": f"{target.min_scale}..{target.max_scale or '∞'}",
                "status": state.rsplit(".", 1)[-1],
            }
        return result

    # --- stop ----------------------------------------------------------------------------
    def shutdown(self, *, drain: bool = True) -> dict[str, Any]:
        """Stop sources (draining and committing), then brokers, then Services.

        Returns the last status seen before the actors went away.
        """
        final = self.status()
        for key in list(self._running.sources):
            stopped = self._stop_source(key, drain=drain)
            final["sources"][key] = _sum_counters(stopped)
        final["triggers"] = self.status()["triggers"]
        for handles in self._running.brokers.values():
            for handle in handles:
                ray.kill(handle)
        self._running.brokers.clear()
        for planned in self._running.services.values():
            try:
                delete_service(app_name(planned.service))
            except Exception:  # best effort on the way out
                _log.exception("could not delete Service %s", planned.key)
        self._running = _Running()
        return final


def _alive(handle: Any) -> bool:
    # Only a dead actor is replaced: a slow answer is not death (a new actor of the same name
    # could not be created anyway while the old one lives).
    try:
        ray.get(handle.ready.remote(), timeout=_PING_TIMEOUT_S)
    except ray.exceptions.RayActorError:
        return False
    except ray.exceptions.GetTimeoutError:
        return True
    return True


def _stats_or_dead(handle: Any) -> dict[str, Any]:
    # A dead consumer must not hide the others' counters, nor make shutdown() fail.
    try:
        stats: dict[str, Any] = ray.get(handle.stats.remote())
    except ray.exceptions.RayActorError:
        return {"dead": 1}
    return stats


def _sum_counters(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Add up numeric counters; per-partition maps of numbers (``lag``) add up to one number."""
    total: dict[str, Any] = {}
    for item in items:
        for name, raw in item.items():
            if name == "committed":
                continue  # offsets of different partitions do not add up to anything
            value = raw
            if isinstance(raw, dict):
                value = sum(v for v in raw.values() if isinstance(v, int | float))
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            total[name] = total.get(name, 0) + value
    return total

"""The reconciler: manifests in, running Serve deployments and Ray actors out.

``Runtime.apply(resources)`` makes the cluster match the manifests (creating, updating and
removing what changed); ``status()`` gathers live counters; ``shutdown()`` drains in-flight
events, commits offsets and removes everything it started.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import ray
from ray import serve

from knray.broker import Outcome
from knray.broker.http_ingress import DEFAULT_HTTP_HOST, DEFAULT_MAX_BODY_BYTES
from knray.broker.ingress_queue import DEFAULT_QUEUE_CAPACITY
from knray.broker.kafka_class import KafkaBrokerConfig, kafka_broker_configs
from knray.broker.outcome import unpack_outcomes
from knray.errors import FieldProblem, ManifestError
from knray.events import CloudEvent
from knray.events.packed import pack_events
from knray.manifests import Resource
from knray.runtime.actors import BrokerActor, SourceActor
from knray.runtime.ingress import IngressActor
from knray.runtime.kafka_broker import KafkaBrokerActor, KafkaTriggers, get_explained
from knray.runtime.names import (
    INGRESS_ACTOR_NAME,
    RAY_NAMESPACE,
    broker_actor_name,
    source_actor_name,
)
from knray.runtime.plan import BrokerPlan, Plan, ServicePlan, SourcePlan, build_plan
from knray.serving import delete_service, deploy_service
from knray.serving.deployment import app_name, delete_services
from knray.sources.kafka_security import SecretResolver
from knray.sources.registry import SourceUnavailableError, consumer_count, consumer_factory

__all__ = ["JOB_CONFIG_ENV", "Runtime", "connect", "disconnect", "in_ray_job"]

_log = logging.getLogger(__name__)
_STOP_TIMEOUT_S = 60.0
_PING_TIMEOUT_S = 10.0


# Set by Ray's job supervisor in the entrypoint's environment, and only there.
JOB_CONFIG_ENV: Final = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def in_ray_job() -> bool:
    """True when this process is the entrypoint of a Ray job (``ray job submit``)."""
    return JOB_CONFIG_ENV in os.environ


def connect(
    address: str | None = None, *, working_dir: str | None = None, log_to_driver: bool = True
) -> bool:
    """Connect to the Ray cluster at ``address``, or start a local one when None.

    With an address, the working directory is shipped to the workers (Ray ``runtime_env``
    ``working_dir``) so handler modules import there as they do here. Inside a Ray job the
    driver attaches to the job's cluster (``RAY_ADDRESS``) and ships nothing: the job's own
    ``runtime_env`` already carries the working directory to every worker. Outside a job,
    no address means a new local Ray, whatever ``RAY_ADDRESS`` says. Returns False when
    this process was connected already (nothing done), True otherwise.
    """
    if ray.is_initialized():
        return False
    if in_ray_job():
        # The supervisor sets RAY_ADDRESS to the cluster's GCS address; an explicit address
        # wins. Passing a working_dir here would conflict with the job's runtime_env.
        ray.init(address=address or "auto", namespace=RAY_NAMESPACE, log_to_driver=log_to_driver)
        return True
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
            # "local": RAY_ADDRESS (often the dashboard URL, exported for `ray job`) is ignored.
            address="local",
            namespace=RAY_NAMESPACE,
            include_dashboard=False,
            log_to_driver=log_to_driver,
            configure_logging=False,
            runtime_env={"env_vars": {"RAY_ENABLE_AUTO_CONNECT": "0"}},
        )
    return True


def disconnect() -> None:
    """Disconnect from Ray (a local Ray started by :func:`connect` stops with it)."""
    if ray.is_initialized():
        ray.shutdown()


@dataclass
class _Running:
    plan: Plan = field(default_factory=Plan)
    brokers: dict[str, list[Any]] = field(default_factory=dict)
    sources: dict[str, list[Any]] = field(default_factory=dict)
    services: dict[str, ServicePlan] = field(default_factory=dict)


class Runtime:
    """Runs a set of Knative manifests on the connected Ray cluster.

    With ``http_port`` (0: a free port), every Broker gets an HTTP ingress at
    ``http://<http_host>:<port>/<namespace>/<name>`` (see :attr:`ingress_addresses`);
    ``max_body_bytes`` caps a request (413 above), ``ingress_queue_capacity`` the events an
    in-memory Broker's ingress holds before answering 503. ``bootstrap_servers`` replaces the
    bootstrap servers of KafkaSources and of Kafka-class Brokers.
    """

    def __init__(
        self,
        *,
        dispatchers_per_broker: int = 2,
        bootstrap_servers: str | None = None,
        consumer_options: dict[str, Any] | None = None,
        http_host: str = DEFAULT_HTTP_HOST,
        http_port: int | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        ingress_queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        services_application: str | None = None,
        source_options: Mapping[str, Mapping[str, Any]] | None = None,
        secrets: SecretResolver | None = None,
    ) -> None:
        """``services_application``: the Serve application that already hosts the Services'
        deployments (``knray.runtime.app``); the Runtime then runs brokers and sources only,
        and leaves deploying and deleting the Services to Serve. ``bootstrap_servers`` and
        ``consumer_options`` apply to KafkaSources (the latter are KafkaConsumer keywords);
        ``source_options`` maps a source kind to its consumer's keywords, e.g.
        ``{"PingSource": {"clock": ScaledClock.starting_now(60)}}``. ``secrets`` resolves the
        Kafka credentials of KafkaSources and Kafka-class Brokers in their actors (default:
        each actor's environment, see ``knray.sources.kafka_security``); it is sent to the
        actors, so give it a ``secrets_dir``, not values."""
        if dispatchers_per_broker < 1:
            raise ValueError("dispatchers_per_broker must be at least 1")
        self.dispatchers_per_broker = dispatchers_per_broker
        self.bootstrap_servers = bootstrap_servers
        self.consumer_options = consumer_options or {}
        self.http_host = http_host
        self.http_port = http_port
        self.max_body_bytes = max_body_bytes
        self.ingress_queue_capacity = ingress_queue_capacity
        self.ingress_addresses: dict[str, str] = {}
        self.services_application = services_application
        self.source_options = {kind: dict(o) for kind, o in (source_options or {}).items()}
        self._running = _Running()
        self._kafka_configs: dict[str, KafkaBrokerConfig] = {}
        self.secrets = secrets
        self._kafka_triggers = KafkaTriggers(dispatchers_per_broker, self.consumer_options, secrets)
        self._ingress: Any = None

    # --- apply ---------------------------------------------------------------------------
    def apply(self, resources: Sequence[Resource]) -> Plan:
        """Make the cluster run ``resources``; returns the plan that now runs."""
        plan = build_plan(resources)
        if self.services_application:
            hosted = self.services_application
            plan = replace(
                plan, services=tuple(replace(s, application=hosted) for s in plan.services)
            )
        unavailable = []
        for planned in plan.sources:
            try:
                consumer_factory(planned.source.KIND)
            except SourceUnavailableError as error:
                unavailable.append(FieldProblem("kind", str(error), planned.key))
        if unavailable:
            raise ManifestError(unavailable)
        configs = kafka_broker_configs(plan.resources, self.bootstrap_servers)
        old = self._running.plan
        services = {s.key: s for s in plan.services}
        self._apply_services(old, plan)
        self._apply_brokers(old, plan, services, configs)
        self._kafka_configs = configs
        # Trigger groups are placed at the end of their topic before events can arrive.
        self._kafka_triggers.apply(plan.brokers, configs, services)
        self._apply_sources(old, plan, services)
        self._apply_ingress(plan, configs)
        self._running.plan = plan
        self._running.services = services
        self.heal()
        return plan

    def _apply_ingress(self, plan: Plan, configs: dict[str, KafkaBrokerConfig]) -> None:
        if self.http_port is None:
            return
        if self._ingress is None:
            remote: Any = ray.remote(IngressActor)
            try:
                # One ingress per Ray cluster: the name is taken while another knray runs.
                self._ingress = remote.options(
                    name=INGRESS_ACTOR_NAME,
                    namespace=RAY_NAMESPACE,
                    num_cpus=0,
                    max_concurrency=1000,
                ).remote(
                    self.http_host,
                    self.http_port,
                    self.dispatchers_per_broker,
                    max_body_bytes=self.max_body_bytes,
                    queue_capacity=self.ingress_queue_capacity,
                )
                self.http_port = ray.get(self._ingress.start.remote())
            except Exception as error:
                if self._ingress is not None:
                    ray.kill(self._ingress)
                self._ingress = None
                raise OSError(
                    f"the Broker ingress cannot listen on {self.http_host}:{self.http_port}: "
                    f"{error}"
                ) from None
        classes = {b.key: "kafka" if b.key in configs else "memory" for b in plan.brokers}
        self.ingress_addresses = ray.get(self._ingress.set_brokers.remote(classes))

    def _apply_services(self, old: Plan, new: Plan) -> None:
        if self.services_application:
            return  # the hosting Serve application deploys and deletes them
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

    def _apply_brokers(
        self,
        old: Plan,
        new: Plan,
        services: dict[str, ServicePlan],
        configs: dict[str, KafkaBrokerConfig],
    ) -> None:
        for planned in new.brokers:
            handles = self._running.brokers.get(planned.key)
            config = configs.get(planned.key)
            if handles is not None and config != self._kafka_configs.get(planned.key):
                _kill_and_wait(self._running.brokers.pop(planned.key))  # class or topic changed
                handles = None
            if handles is None:
                handles = [
                    self._broker_actor(planned, i, services, config)
                    for i in range(self.dispatchers_per_broker)
                ]
                try:
                    get_explained([h.ready.remote() for h in handles])
                except BaseException:
                    _kill_and_wait(handles)  # named actors: a next apply creates them again
                    raise
                self._running.brokers[planned.key] = handles
            elif old.broker(planned.key) != planned:
                ray.get([h.update.remote(planned, services) for h in handles])
        for previous in old.brokers:
            if new.broker(previous.key) is None:
                for handle in self._running.brokers.pop(previous.key, []):
                    ray.kill(handle)

    def _broker_actor(
        self,
        planned: BrokerPlan,
        index: int,
        services: dict[str, ServicePlan],
        config: KafkaBrokerConfig | None,
    ) -> Any:
        remote: Any = ray.remote(BrokerActor if config is None else KafkaBrokerActor)
        extra = () if config is None else (config, self.secrets)
        return remote.options(
            name=broker_actor_name(planned.key, index),
            namespace=RAY_NAMESPACE,
            num_cpus=0,
            max_concurrency=1000,
        ).remote(planned, services, self.dispatchers_per_broker, *extra)

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
            if self.secrets is not None:
                options.setdefault("secrets", self.secrets)
            if self.bootstrap_servers:
                options["bootstrap_servers"] = self.bootstrap_servers
        return options

    def heal(self) -> list[str]:
        """Replace the source and dispatcher actors that died (killed, crashed, node lost)
        with new ones of the same name; consumers rejoin their group and resume from the
        committed offsets.
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
        for key, handles in self._running.brokers.items():
            planned = self._running.plan.broker(key)
            for index, handle in enumerate(handles):
                if planned is None or _alive(handle):
                    continue
                # Events it held come back to their sources as failed and are sent again;
                # the pools look the name up again after a failure.
                name = broker_actor_name(key, index)
                _log.warning("dispatcher actor %s died: starting a replacement", name)
                config = self._kafka_configs.get(key)
                replacement = self._broker_actor(planned, index, self._running.services, config)
                get_explained(replacement.ready.remote())
                handles[index] = replacement
                replaced.append(name)
        replaced.extend(self._kafka_triggers.heal(_alive))
        if self._ingress is not None and not _alive(self._ingress):
            # Same host and port; events its queues held are lost (docs/ingress.md).
            _log.warning("the Broker ingress died: starting a replacement")
            self._ingress = None
            self._apply_ingress(self._running.plan, self._kafka_configs)
            replaced.append(INGRESS_ACTOR_NAME)
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

    # --- send ----------------------------------------------------------------------------
    def send(
        self,
        broker_key: str,
        events: Sequence[CloudEvent],
        *,
        batch_size: int = 500,
        timeout_s: float | None = None,
    ) -> list[Outcome]:
        """Send events into a running Broker (``namespace/name``) as a source does: batches
        spread over its dispatcher actors; one Outcome per event, in order, once finished.
        Raises KeyError for an unknown Broker, GetTimeoutError after ``timeout_s``."""
        handles = self._running.brokers.get(broker_key)
        if handles is None:
            known = ", ".join(sorted(self._running.brokers)) or "none"
            raise KeyError(f"no running Broker {broker_key!r} (running: {known})")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        batches = [list(events[i : i + batch_size]) for i in range(0, len(events), batch_size)]
        refs = [
            handles[index % len(handles)].deliver_packed.remote(pack_events(batch))
            for index, batch in enumerate(batches)
        ]
        outcomes: list[Outcome] = []
        for packed in ray.get(refs, timeout=timeout_s):
            outcomes.extend(unpack_outcomes(packed))
        return outcomes

    def deliveries(self, trigger_key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The latest final results at a Trigger (``Trigger/namespace/name``), or at every
        Trigger, as plain dicts (see ``Dispatcher.recent``), oldest first; each dispatcher
        keeps a bounded number per Trigger."""
        rows: list[dict[str, Any]] = []
        for handles in self._running.brokers.values():
            for found in ray.get([h.recent.remote(trigger_key, limit) for h in handles]):
                rows.extend(found)
        rows.extend(self._kafka_triggers.recent(trigger_key, limit))
        rows.sort(key=lambda row: float(row["time_s"]))
        return rows[-limit:] if limit else rows

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
        triggers.update(self._kafka_triggers.route_stats())
        return {
            "sources": sources,
            "triggers": triggers,
            "services": self.service_status(),
            "brokers": self.broker_status(),
        }

    def broker_status(self) -> dict[str, dict[str, Any]]:
        """Each Broker's class and ingress address, with its ingress counters."""
        ingress: dict[str, Any] = {}
        if self._ingress is not None:
            try:
                ingress = ray.get(self._ingress.stats.remote()).get("brokers", {})
            except ray.exceptions.RayActorError:
                ingress = {}
        result: dict[str, dict[str, Any]] = {}
        for planned in self._running.plan.brokers:
            entry = {"class": "kafka" if planned.key in self._kafka_configs else "memory"}
            entry.update(ingress.get(planned.key, {}))
            entry.setdefault("address", "")
            result[planned.key] = entry
        return result

    def service_status(self) -> dict[str, dict[str, Any]]:
        """Replicas and state of each Service's Serve deployment."""
        result: dict[str, dict[str, Any]] = {}
        try:
            applications = serve.status().applications
        except Exception:  # Serve not started yet
            applications = {}
        for key, planned in self._running.services.items():
            name = app_name(planned.service)
            application = applications.get(planned.application or name)
            replicas = 0
            state = "missing"
            if application is not None:
                state = str(application.status)
                for deployment_name, deployment in application.deployments.items():
                    if deployment_name != name:
                        continue
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
        if self._ingress is not None:
            # No new events; what the ingress accepted reaches the brokers first.
            try:
                left = ray.get(self._ingress.drain.remote(30.0 if drain else 0.0))
                if left:
                    _log.warning("%d events accepted by the ingress were not delivered", left)
            except Exception:
                _log.exception("the Broker ingress did not drain cleanly")
        final = self.status()
        for key in list(self._running.sources):
            stopped = self._stop_source(key, drain=drain)
            final["sources"][key] = _sum_counters(stopped)
        stopped_triggers = self._kafka_triggers.stop_all(drain=drain)
        final["triggers"] = {**self.status()["triggers"], **stopped_triggers}
        # Gone before returning: a Runtime started next may reuse the names at once.
        for handles in self._running.brokers.values():
            _kill_and_wait(handles)
        self._running.brokers.clear()
        if self._ingress is not None:
            _kill_and_wait([self._ingress])
            self._ingress = None
            self.ingress_addresses = {}
        self._kafka_configs = {}
        # A hosted Service (``planned.application``) goes with the application hosting it.
        names = [app_name(p.service) for p in self._running.services.values() if not p.application]
        try:
            for name in delete_services(names, timeout_s=_STOP_TIMEOUT_S):
                _log.error("Serve application %s was not deleted in time", name)
        except Exception:  # best effort on the way out
            _log.exception("could not delete the Services' Serve applications")
        self._running = _Running()
        return final


def _kill_and_wait(handles: Sequence[Any]) -> None:
    # A replacement of the same name can be created only once the old actor is gone.
    for handle in handles:
        ray.kill(handle)
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    for handle in handles:
        while _alive(handle) and time.monotonic() < deadline:
            time.sleep(0.05)


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

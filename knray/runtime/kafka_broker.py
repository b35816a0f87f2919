"""The actors of a Kafka-class Broker: its topic writers and one consumer per Trigger.

A Kafka-class Broker's dispatcher actors (same names as the in-memory class, so sources,
replies and the HTTP ingress reach them the same way) append events to the Broker's topic.
Each Trigger is a consumer group of that topic (``knray.sources.kafka.KafkaConsumer``) whose
sink is a one-route Dispatcher: the Trigger's filter, subscriber and delivery; its replies go
back to the topic through the Broker's actors, so every Trigger sees them.

Kafka credentials (the Secret of ``auth.secret.ref.name``) are read in each actor, from its own
environment or secrets folder (a :class:`SecretResolver` crosses to the actors, never a value),
when the actor starts its clients: a missing key or a refused connection is an error of
``ready()``/``start()``, which :func:`get_explained` gives to ``Runtime.apply`` as it is.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray

from knray.broker import Outcome, Subscriber
from knray.broker.dispatcher import Dispatcher, Route
from knray.broker.kafka_class import (
    AUTH_SECRET_KEY,
    KafkaBrokerConfig,
    trigger_group,
    trigger_source,
)
from knray.broker.kafka_topic import KafkaTopicWriter, start_group_at_end
from knray.broker.outcome import PackedOutcomes, pack_outcomes
from knray.errors import KnrayError
from knray.events import CloudEvent
from knray.events.packed import PackedEvents, unpack_events
from knray.runtime.names import RAY_NAMESPACE, kafka_trigger_actor_name
from knray.runtime.plan import BrokerPlan, ServicePlan, TargetKind, TargetRef, TriggerPlan
from knray.runtime.targets import broker_pool, subscriber_for
from knray.sources.kafka import KafkaConsumer
from knray.sources.kafka_connect import connect_or_explain
from knray.sources.kafka_security import KafkaSecurity, SecretResolver, broker_secret_security

__all__ = [
    "KafkaBrokerActor",
    "KafkaTriggerActor",
    "KafkaTriggers",
    "broker_security",
    "get_explained",
]

_log = logging.getLogger(__name__)
_STOP_TIMEOUT_S = 60.0


def broker_security(
    broker: str, config: KafkaBrokerConfig, secrets: SecretResolver | None = None
) -> KafkaSecurity:
    """How the clients of Kafka-class Broker ``broker`` (``namespace/name``) connect: as its
    auth Secret says, else PLAINTEXT. Errors name the Broker and the ConfigMap key."""
    if config.auth_secret is None:
        return KafkaSecurity()
    where = f"Broker {broker}: ConfigMap {config.config_map} {AUTH_SECRET_KEY}"
    return broker_secret_security(config.auth_secret, secrets or SecretResolver(), where)


def get_explained(refs: Any, timeout: float | None = None) -> Any:
    """``ray.get``, raising a knray error of a remote call as itself: its message names the
    resource and the cause, and reads better than Ray's wrapping with a remote traceback."""
    try:
        return ray.get(refs, timeout=timeout)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, KnrayError):
            raise error.cause from None
        raise


class KafkaBrokerActor:
    """One writer of a Kafka-class Broker: events in, appended to the topic (acks=all)."""

    def __init__(
        self,
        plan: BrokerPlan,
        services: Mapping[str, ServicePlan],
        pool_size: int,
        config: KafkaBrokerConfig,
        secrets: SecretResolver | None = None,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        del services, pool_size  # the Triggers' consumers deliver, not this actor
        self._key = plan.key
        self._config = config
        self._secrets = secrets
        self._writer: KafkaTopicWriter | None = None
        self._starting = asyncio.Lock()

    async def _started(self) -> KafkaTopicWriter:
        async with self._starting:  # one writer, however many calls arrive first
            if self._writer is None:
                security = broker_security(self._key, self._config, self._secrets)
                writer = KafkaTopicWriter(self._config, client_options=security.client_options())
                servers = list(self._config.bootstrap_servers)
                await connect_or_explain(writer.start(), f"Broker {self._key}", servers, security)
                self._writer = writer
            return self._writer

    async def deliver(self, events: Sequence[CloudEvent], stamped: bool = False) -> list[Outcome]:
        return await (await self._started()).deliver(events, stamped=stamped)

    async def deliver_packed(self, packed: PackedEvents, stamped: bool = False) -> PackedOutcomes:
        """``deliver`` in the wire form the pool uses (see knray.events.packed)."""
        return pack_outcomes(await self.deliver(unpack_events(packed), stamped))

    async def update(self, plan: BrokerPlan, services: Mapping[str, ServicePlan]) -> None:
        del plan, services  # Trigger changes restart their consumers instead

    async def recent(
        self, route_key: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        del route_key, limit  # deliveries happen in the Trigger consumers
        return []

    async def stats(self) -> dict[str, Any]:
        totals = self._writer.stats() if self._writer is not None else {}
        return {"broker": self._key, "routes": {}, "totals": totals}

    async def ready(self) -> bool:
        await self._started()  # the topic exists before anything is sent
        return True


def _subscriber(
    target: TargetRef, services: Mapping[str, ServicePlan], pool_size: int
) -> Subscriber:
    # This actor is the Trigger's only sender to a Service: it has the Service's whole
    # containerConcurrency budget (an in-memory Broker splits it between its dispatchers).
    senders = 1 if target.kind is TargetKind.SERVICE else pool_size
    return subscriber_for(target, services, senders)


class _StampedSink:
    """Events read from the topic were stamped by the Broker's ingress already."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def deliver(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        return await self.dispatcher.deliver(events, stamped=True)


class KafkaTriggerActor:
    """The consumer group of one Trigger of a Kafka-class Broker."""

    def __init__(
        self,
        trigger: TriggerPlan,
        broker: BrokerPlan,
        services: Mapping[str, ServicePlan],
        pool_size: int,
        config: KafkaBrokerConfig,
        *,
        consumer_options: Mapping[str, Any] | None = None,
        secrets: SecretResolver | None = None,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        subscriber = _subscriber(trigger.subscriber, services, pool_size)
        dead_letter = (
            _subscriber(trigger.dead_letter, services, pool_size)
            if trigger.dead_letter is not None
            else None
        )
        route = Route.from_trigger(
            trigger.trigger,
            subscriber,
            broker_delivery=broker.broker.spec.delivery,
            dead_letter=dead_letter,
        )
        self._dispatcher = Dispatcher(
            [route], broker_name=broker.key, reply_sink=broker_pool(broker.key, pool_size)
        )
        self._config = config
        self._group = trigger_group(trigger.trigger)
        self._broker = broker.key
        self._what = f"Broker {broker.key} (Trigger {trigger.key})"
        self._source = trigger_source(trigger.trigger, config)
        self._sink = _StampedSink(self._dispatcher)
        self._options = dict(consumer_options or {})
        self._secrets = secrets
        self._consumer: KafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        gc.freeze()  # see knray.runtime.actors.BrokerActor

    async def start(self) -> None:
        if self._task is None:
            # The Broker's credentials, read here so that a problem is start()'s error.
            security = broker_security(self._broker, self._config, self._secrets)
            self._consumer = KafkaConsumer(
                self._source, self._sink, security=security, **self._options
            )
            placed = await connect_or_explain(
                start_group_at_end(self._config, self._group, security.client_options()),
                self._what,
                list(self._config.bootstrap_servers),
                security,
            )
            if placed:
                _log.info("consumer group %s starts at %s", self._group, placed)
            self._task = asyncio.create_task(self._consumer.run())

    async def stop(self, drain: bool = True) -> dict[str, Any]:
        if self._consumer is None:
            return {}
        await self._consumer.stop(drain=drain)
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except (TimeoutError, asyncio.CancelledError):
                _log.warning("trigger consumer did not stop in time")
            except Exception:
                _log.exception("trigger consumer ended with an error")
        return self._consumer.stats()

    async def stats(self) -> dict[str, Any]:
        consumer = self._consumer.stats() if self._consumer is not None else {}
        return {"consumer": consumer, "dispatch": self._dispatcher.stats()}

    async def recent(
        self, route_key: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return self._dispatcher.recent(route_key, limit)

    async def ready(self) -> bool:
        return True


@dataclass(frozen=True)
class _TriggerRun:
    trigger: TriggerPlan
    broker: BrokerPlan
    config: KafkaBrokerConfig
    subscribers: tuple[ServicePlan | None, ...]


class KafkaTriggers:
    """The Trigger consumer actors of every Kafka-class Broker (used by the Runtime)."""

    def __init__(
        self,
        pool_size: int,
        consumer_options: Mapping[str, Any],
        secrets: SecretResolver | None = None,
    ) -> None:
        self._pool_size = pool_size
        self._consumer_options = dict(consumer_options)
        self._secrets = secrets
        self._runs: dict[str, _TriggerRun] = {}
        self._handles: dict[str, Any] = {}
        self._services: Mapping[str, ServicePlan] = {}

    def apply(
        self,
        brokers: Sequence[BrokerPlan],
        configs: Mapping[str, KafkaBrokerConfig],
        services: Mapping[str, ServicePlan],
    ) -> None:
        """Start, restart (changed) and stop Trigger consumers to match ``brokers``."""
        self._services = services
        wanted: dict[str, _TriggerRun] = {}
        for broker in brokers:
            config = configs.get(broker.key)
            if config is None:
                continue
            for trigger in broker.triggers:
                targets = (trigger.subscriber, trigger.dead_letter)
                used = tuple(services.get(t.key) if t is not None else None for t in targets)
                wanted[trigger.key] = _TriggerRun(trigger, broker, config, used)
        for key, run in list(self._runs.items()):
            if wanted.get(key) != run:
                self._stop(key, drain=True)
        started = []
        for key, run in wanted.items():
            if key not in self._handles:
                self._handles[key] = self._actor(key, run)
                self._runs[key] = run
                started.append(self._handles[key])
        get_explained([h.start.remote() for h in started])

    def _actor(self, key: str, run: _TriggerRun) -> Any:
        remote: Any = ray.remote(KafkaTriggerActor)
        return remote.options(
            name=kafka_trigger_actor_name(key),
            namespace=RAY_NAMESPACE,
            num_cpus=0,
            max_concurrency=100,
        ).remote(
            run.trigger,
            run.broker,
            self._services,
            self._pool_size,
            run.config,
            consumer_options=self._consumer_options,
            secrets=self._secrets,
        )

    def _stop(self, key: str, *, drain: bool) -> dict[str, Any]:
        """Stop one consumer; returns its last counters."""
        handle = self._handles.pop(key, None)
        self._runs.pop(key, None)
        if handle is None:
            return {}
        counters: dict[str, Any] = {}
        try:
            ray.get(handle.stop.remote(drain), timeout=_STOP_TIMEOUT_S)
            counters = _route_counters(key, ray.get(handle.stats.remote()))
        except Exception:
            _log.exception("Trigger consumer %s did not stop cleanly", key)
        ray.kill(handle)
        while True:  # gone before returning: a replacement may reuse the name at once
            try:
                ray.get(handle.ready.remote(), timeout=_STOP_TIMEOUT_S)
            except ray.exceptions.RayActorError:
                break
            except ray.exceptions.GetTimeoutError:
                break  # cannot tell; a later start reports the name conflict
            time.sleep(0.05)
        return counters

    def stop_all(self, *, drain: bool) -> dict[str, dict[str, Any]]:
        """Stop every consumer (drained and committed first when ``drain``); returns each
        Trigger's last counters."""
        return {key: self._stop(key, drain=drain) for key in list(self._handles)}

    def heal(self, alive: Any) -> list[str]:
        """Replace consumers that died; they resume from the group's committed offsets."""
        replaced = []
        for key, handle in list(self._handles.items()):
            if alive(handle):
                continue
            _log.warning("Trigger consumer %s died: starting a replacement", key)
            replacement = self._actor(key, self._runs[key])
            get_explained(replacement.start.remote())
            self._handles[key] = replacement
            replaced.append(kafka_trigger_actor_name(key))
        return replaced

    def recent(self, route_key: str | None, limit: int | None) -> list[dict[str, Any]]:
        """The latest final results of every Trigger consumer (see ``Dispatcher.recent``)."""
        rows: list[dict[str, Any]] = []
        for found in ray.get([h.recent.remote(route_key, limit) for h in self._handles.values()]):
            rows.extend(found)
        return rows

    def route_stats(self) -> dict[str, dict[str, Any]]:
        """Each Trigger's delivery counters, plus its consumer's lag."""
        result: dict[str, dict[str, Any]] = {}
        for key, handle in self._handles.items():
            try:
                result[key] = _route_counters(key, ray.get(handle.stats.remote()))
            except ray.exceptions.RayActorError:
                result[key] = {"dead": 1}
        return result


def _route_counters(key: str, stats: Mapping[str, Any]) -> dict[str, Any]:
    counters = dict(stats["dispatch"]["routes"].get(key, {}))
    counters["lag"] = sum(stats["consumer"].get("lag", {}).values())
    return counters

"""An in-memory broker for tests: the real dispatcher, compiled triggers and delivery rules,
with Services' handlers called in this process. No Ray, no Kafka, no network.

What runs is knray's own code: ``Dispatcher`` (fan-out, retries, dead letters, replies,
TTL), ``compile_trigger`` (attributes, exact/prefix/suffix/all/any/not, CESQL, CEL) and
``ServiceReplica`` (per-event outcomes, batch handlers, containerConcurrency). Only the
transport is replaced: a Service is one in-process replica, a URI is a :class:`RecordingSink`,
and retry backoff is recorded instead of slept (unless ``real_time=True``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from knray.broker import Outcome, Subscriber, SubscriberResponse
from knray.broker.dispatcher import Dispatcher, Route
from knray.errors import FieldProblem, ManifestError
from knray.events import CloudEvent
from knray.manifests import Broker, Destination, KnativeService, Resource, Trigger, load_manifests
from knray.serving.handlers import handler_spec_for_service
from knray.serving.replica import ServiceReplica

__all__ = [
    "Attempt",
    "HandlerSubscriber",
    "InMemoryBroker",
    "RecordingSink",
    "make_event",
]

_EVENT_NUMBERS = itertools.count(1)
_DEFAULT_SOURCE: Final = "/knray/testing"
# Deliveries each trigger keeps for InMemoryBroker.deliveries(): a test's worth.
_RECORD_LIMIT: Final = 100_000


def make_event(
    type: str,
    data: Any = None,
    *,
    source: str = _DEFAULT_SOURCE,
    id: str | None = None,
    subject: str | None = None,
    datacontenttype: str | None = None,
    **extensions: Any,
) -> CloudEvent:
    """A CloudEvent for tests: ``make_event("chat.message", {"text": "hi"}, room="r1")``.

    ``id`` defaults to a new ``test-N``; dict or list data is JSON (``application/json``).
    Extensions are keyword arguments (lower-case names, as the spec requires).
    """
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": id or f"test-{next(_EVENT_NUMBERS)}",
        "source": source,
        "type": type,
    }
    if subject is not None:
        attributes["subject"] = subject
    if datacontenttype is None and isinstance(data, dict | list):
        datacontenttype = "application/json"
    if datacontenttype is not None:
        attributes["datacontenttype"] = datacontenttype
    attributes.update(extensions)
    return CloudEvent(attributes, data)


@dataclass(frozen=True)
class Attempt:
    """One event handed to a subscriber once, and its answer (retries are further attempts)."""

    event: CloudEvent
    response: SubscriberResponse


@dataclass
class _Recorder:
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def received(self) -> list[CloudEvent]:
        """Events accepted (2xx), in the order they were answered."""
        return [a.event for a in self.attempts if a.response.ok]

    @property
    def failed(self) -> list[Attempt]:
        """Attempts answered with an error or not at all (each retry is one)."""
        return [a for a in self.attempts if not a.response.ok]

    @property
    def replies(self) -> list[CloudEvent]:
        """Reply events returned, in order."""
        return [a.response.reply for a in self.attempts if a.response.reply is not None]


class RecordingSink(_Recorder):
    """A Subscriber that records every event and answers ``code`` (200 by default): stands in
    for a URI sink or a dead-letter sink. Give ``code=503`` to make it fail."""

    def __init__(self, address: str = "memory://recording-sink", *, code: int = 200) -> None:
        super().__init__()
        self._address = address
        self.code = code

    @property
    def address(self) -> str:
        return self._address

    async def send(
        self, events: Sequence[CloudEvent], timeout_s: float | None
    ) -> list[SubscriberResponse]:
        responses = [SubscriberResponse(code=self.code) for _ in events]
        self.attempts.extend(Attempt(e, r) for e, r in zip(events, responses, strict=True))
        return responses


class HandlerSubscriber(_Recorder):
    """A Knative Service as one in-process replica calling its handler: every event's
    response (a reply, an error for that event alone) is recorded."""

    def __init__(
        self, service: str, handler: str | object, *, container_concurrency: int = 0
    ) -> None:
        super().__init__()
        self.service = service
        self.replica = ServiceReplica(service, handler, container_concurrency)

    @property
    def address(self) -> str:
        return f"memory://{self.service}"

    async def send(
        self, events: Sequence[CloudEvent], timeout_s: float | None
    ) -> list[SubscriberResponse]:
        try:
            responses = await asyncio.wait_for(self.replica.handle(list(events)), timeout_s)
        except TimeoutError:
            # As through Serve: the call is cut off; a sync handler's thread runs on.
            error = f"timed out after {timeout_s}s"
            responses = [SubscriberResponse(code=None, error=error) for _ in events]
        self.attempts.extend(Attempt(e, r) for e, r in zip(events, responses, strict=True))
        return responses


class _RecordedSleep:
    """Backoff delays are recorded, not waited for, so retries cost no test time."""

    def __init__(self, real_time: bool) -> None:
        self.delays_s: list[float] = []
        self._real_time = real_time

    async def __call__(self, delay_s: float) -> None:
        self.delays_s.append(delay_s)
        await asyncio.sleep(delay_s if self._real_time else 0)


class _BrokerSink:
    """A Broker subscribing another Broker (or itself): deliver into its dispatcher."""

    def __init__(self, key: str, dispatchers: Mapping[str, Dispatcher]) -> None:
        self._key = key
        self._dispatchers = dispatchers

    @property
    def address(self) -> str:
        return f"broker/{self._key}"

    async def send(
        self, events: Sequence[CloudEvent], timeout_s: float | None
    ) -> list[SubscriberResponse]:
        outcomes = await self._dispatchers[self._key].deliver(events)
        return [
            SubscriberResponse(202) if o.finished else SubscriberResponse(503, error=o.error)
            for o in outcomes
        ]


def _qualified(name: str) -> str:
    return name if "/" in name else f"default/{name}"


class InMemoryBroker:
    """Brokers, Triggers and Services of a set of manifests, run in this process.

    ``resources`` is YAML text, a file or folder, or resource objects (mixed lists too).
    ``handlers`` replaces Services' handlers: ``{"moderation": fake}`` (a function, class or
    ``module:attr``, by Service name or ``namespace/name``). ``sinks`` gives the Subscriber of
    a URI (default: a :class:`RecordingSink` per URI). Sources (KafkaSource, ...) are not run:
    tests send events with :meth:`send`.
    """

    def __init__(
        self,
        resources: str | Path | Resource | Iterable[Resource | str | Path],
        *,
        handlers: Mapping[str, object] | None = None,
        sinks: Mapping[str, Subscriber] | None = None,
        real_time: bool = False,
    ) -> None:
        self.resources = _load(resources)
        self._sleep = _RecordedSleep(real_time)
        overrides = {_qualified(k): v for k, v in (handlers or {}).items()}
        self._sinks: dict[str, Subscriber] = dict(sinks or {})
        self._services: dict[str, HandlerSubscriber] = {}
        self._dispatchers: dict[str, Dispatcher] = {}
        defined = {r.key: r for r in self.resources}
        unknown = sorted(
            set(overrides) - {f"{r.namespace}/{r.name}" for r in self._of(KnativeService)}
        )
        if unknown:
            raise ValueError(f"handlers given for Services that are not defined: {unknown}")
        problems: list[FieldProblem] = []
        for service in self._of(KnativeService):
            key = f"{service.namespace}/{service.name}"
            handler = overrides.get(key)
            if handler is None:
                handler = handler_spec_for_service(service)
            self._services[key] = HandlerSubscriber(
                key, handler, container_concurrency=service.autoscaling.container_concurrency
            )
        brokers = self._of(Broker)
        if not brokers:
            raise ManifestError([FieldProblem("", "no Broker among the resources")])
        routes: dict[str, list[Route]] = {}
        for broker in brokers:
            key = f"{broker.namespace}/{broker.name}"
            routes[key] = []
            for trigger in self._of(Trigger):
                if trigger.namespace != broker.namespace or trigger.spec.broker != broker.name:
                    continue
                routes[key].append(self._route(trigger, broker, defined, problems))
        for trigger in self._of(Trigger):
            if f"{trigger.namespace}/{trigger.spec.broker}" not in routes:
                problems.append(
                    FieldProblem(
                        "spec.broker",
                        f"Broker {trigger.namespace}/{trigger.spec.broker} is not defined",
                        trigger.key,
                    )
                )
        if problems:
            raise ManifestError(problems)
        for key, broker_routes in routes.items():
            self._dispatchers[key] = Dispatcher(
                broker_routes, broker_name=key, sleep=self._sleep, recent_limit=_RECORD_LIMIT
            )

    def _of(self, kind: type[Any]) -> list[Any]:
        return [r for r in self.resources if isinstance(r, kind)]

    def _route(
        self,
        trigger: Trigger,
        broker: Broker,
        defined: Mapping[str, Resource],
        problems: list[FieldProblem],
    ) -> Route:
        subscriber = self._target(
            trigger.spec.subscriber, trigger, "spec.subscriber", defined, problems
        )
        delivery = (
            trigger.spec.delivery if trigger.spec.delivery is not None else broker.spec.delivery
        )
        dead_letter = None
        if delivery is not None and delivery.dead_letter_sink is not None:
            dead_letter = self._target(
                delivery.dead_letter_sink,
                trigger,
                "spec.delivery.deadLetterSink",
                defined,
                problems,
            )
        return Route.from_trigger(
            trigger, subscriber, broker_delivery=broker.spec.delivery, dead_letter=dead_letter
        )

    def _target(
        self,
        target: Destination,
        owner: Resource,
        path: str,
        defined: Mapping[str, Resource],
        problems: list[FieldProblem],
    ) -> Subscriber:
        if target.ref is None:
            uri = target.uri or ""
            if uri not in self._sinks:
                self._sinks[uri] = RecordingSink(uri)
            return self._sinks[uri]
        ref = target.ref
        namespace = ref.namespace or owner.namespace
        key = f"{namespace}/{ref.name}"
        if f"{ref.kind}/{key}" not in defined or ref.kind not in {"Service", "Broker"}:
            problems.append(
                FieldProblem(f"{path}.ref", f"{ref.kind} {key} is not defined", owner.key)
            )
            return RecordingSink(f"undefined://{ref.kind}/{key}")
        if ref.kind == "Broker":
            return _BrokerSink(key, self._dispatchers)
        return self._services[key]

    # --- sending -------------------------------------------------------------------------
    def _dispatcher(self, broker: str | None) -> Dispatcher:
        if broker is None:
            if len(self._dispatchers) != 1:
                raise ValueError(
                    f"several Brokers ({', '.join(self._dispatchers)}): name one with broker="
                )
            return next(iter(self._dispatchers.values()))
        key = _qualified(broker)
        if key not in self._dispatchers:
            raise KeyError(f"no Broker {key}; known: {', '.join(self._dispatchers)}")
        return self._dispatchers[key]

    async def deliver(
        self, events: CloudEvent | Iterable[CloudEvent], *, broker: str | None = None
    ) -> list[Outcome]:
        """Send events into a Broker (the only one, or ``broker``) as a source would; one
        Outcome per event once it and the replies it caused are finished."""
        batch = [events] if isinstance(events, CloudEvent) else list(events)
        return await self._dispatcher(broker).deliver(batch)

    def send(
        self, events: CloudEvent | Iterable[CloudEvent], *, broker: str | None = None
    ) -> list[Outcome]:
        """:meth:`deliver` from synchronous code. Where an event loop already runs in this
        thread (a notebook, an async test), the delivery runs on a loop of its own in a
        helper thread, and this call blocks until it is done (``await deliver`` does not)."""
        batch = [events] if isinstance(events, CloudEvent) else list(events)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.deliver(batch, broker=broker))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="knray-testing") as helper:
            return helper.submit(asyncio.run, self.deliver(batch, broker=broker)).result()

    # --- what happened -------------------------------------------------------------------
    def service(self, name: str) -> HandlerSubscriber:
        """The in-process replica of a Service (by name or ``namespace/name``), with its
        ``received``, ``failed``, ``replies`` and ``attempts``."""
        key = _qualified(name)
        if key not in self._services:
            raise KeyError(f"no Service {key}; known: {', '.join(self._services)}")
        return self._services[key]

    def sink(self, uri: str) -> Subscriber:
        """The Subscriber standing for a URI destination (a RecordingSink unless given)."""
        return self._sinks[uri]

    def deliveries(self, trigger: str | None = None) -> list[dict[str, Any]]:
        """Final results per trigger (``name``, ``namespace/name`` or ``Trigger/ns/name``):
        dicts with time_s, trigger, id, type, source, subject, status, error, reply_type,
        data; oldest first."""
        rows: list[dict[str, Any]] = []
        for dispatcher in self._dispatchers.values():
            rows.extend(dispatcher.recent(None))
        if trigger is not None:
            wanted = _trigger_key(trigger)
            rows = [row for row in rows if row["trigger"] == wanted]
        rows.sort(key=lambda row: float(row["time_s"]))
        return rows

    def stats(self, broker: str | None = None) -> dict[str, Any]:
        """The dispatcher's counters: ``{"broker", "routes": {trigger: counters}, "totals"}``."""
        return self._dispatcher(broker).stats()

    @property
    def retry_delays_s(self) -> list[float]:
        """Backoff delays the retries asked for, in order (recorded instead of slept)."""
        return list(self._sleep.delays_s)


def _trigger_key(trigger: str) -> str:
    if trigger.startswith("Trigger/"):
        return trigger
    return f"Trigger/{_qualified(trigger)}"


def _load(resources: str | Path | Resource | Iterable[Resource | str | Path]) -> list[Resource]:
    if isinstance(resources, str | Path):
        return load_manifests(resources)
    if isinstance(resources, Resource):
        return [resources]
    loaded: list[Resource] = []
    for item in resources:
        loaded.extend(_load(item))
    return loaded

"""An interactive session: Knative resources on Ray from a notebook or a script.

``knray.local()`` starts (or attaches to) Ray and returns a :class:`Local` session; resources
are applied from YAML or Python objects, events sent straight into a Broker, and what happened
comes back as tables and plots. Handlers defined in the notebook itself run in the replicas:
they are shipped by value.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from knray.broker import Outcome
from knray.events import CloudEvent
from knray.interactive.history import History, short_name
from knray.interactive.plots import plot_history
from knray.interactive.rows import Rows
from knray.manifests import Broker, KnativeService, Resource, Trigger, load_manifests
from knray.manifests.annotations import HANDLER_ANNOTATION
from knray.runtime import Runtime
from knray.runtime.runtime import connect, disconnect

__all__ = ["HANDLER_REVISION_LABEL", "Local", "ResourceInput", "local"]

# Set on Services whose handler is defined in the notebook: a new definition of the handler
# changes the Service, so applying it again redeploys the replicas with the new code.
HANDLER_REVISION_LABEL: Final = "knray.dev/handler-revision"
_MAIN_PREFIX: Final = "__main__:"
_STOP_TIMEOUT_S: Final = 10.0

ResourceInput = str | Path | Resource | Iterable["str | Path | Resource"]
_current: Local | None = None


def local(
    address: str | None = None,
    *,
    dispatchers_per_broker: int = 1,
    sample_interval_s: float = 1.0,
    history_limit: int = 3600,
    log_to_driver: bool = False,
    working_dir: str | None = None,
) -> Local:
    """Start a local Ray (or attach to the cluster at ``address``, or to the Ray this
    process is already connected to) and return a session; close it with ``close()`` or
    use it as a context manager: ``with knray.local() as kn: ...``. Starting a session
    closes the previous one of this process.

    Every ``sample_interval_s`` the session records throughput and replicas for
    :meth:`Local.history` and :meth:`Local.plot` (the last ``history_limit`` samples).
    ``log_to_driver`` shows the replicas' output (handler prints) and Serve's progress
    messages here.
    """
    return Local(
        address,
        dispatchers_per_broker=dispatchers_per_broker,
        sample_interval_s=sample_interval_s,
        history_limit=history_limit,
        log_to_driver=log_to_driver,
        working_dir=working_dir,
    )


class Local:
    """A running knray session; see :func:`local`."""

    def __init__(
        self,
        address: str | None = None,
        *,
        dispatchers_per_broker: int = 1,
        sample_interval_s: float = 1.0,
        history_limit: int = 3600,
        log_to_driver: bool = False,
        working_dir: str | None = None,
    ) -> None:
        if sample_interval_s <= 0:
            raise ValueError("sample_interval_s must be positive")
        global _current  # noqa: PLW0603 - one session per process
        if _current is not None:
            # A notebook cell starting a session again: the previous one's actors and
            # deployments would clash with the new ones (same names), so it goes first.
            _current.close()
        if not log_to_driver:
            # Serve logs each deployment step here at INFO: noise between a notebook's cells.
            logging.getLogger("ray.serve").setLevel(logging.WARNING)
        self._started_ray = connect(address, working_dir=working_dir, log_to_driver=log_to_driver)
        self.runtime = Runtime(dispatchers_per_broker=dispatchers_per_broker)
        self._resources: dict[str, Resource] = {}
        self._lock = threading.RLock()
        self._history = History(history_limit)
        self._started_at = time.monotonic()
        self._interval_s = sample_interval_s
        self._stop = threading.Event()
        self._closed = False
        self._sampler = threading.Thread(
            target=self._sample_loop, name="knray-sampler", daemon=True
        )
        self._sampler.start()
        _current = self

    # --- resources -----------------------------------------------------------------------
    @property
    def resources(self) -> list[Resource]:
        """The resources this session runs."""
        return list(self._resources.values())

    def apply(self, *items: ResourceInput) -> Rows:
        """Run resources given as YAML text, files or folders, or objects (``Broker``,
        ``Trigger``, ``KnativeService`` ... as loaded or built with
        ``knray.manifests.builders``). A resource with the key of one already running
        replaces it (as ``kubectl apply``). Returns what runs now."""
        incoming = _collect(items)
        with self._lock:
            self._check_open()
            merged = dict(self._resources)
            for resource in incoming:
                merged[resource.key] = _with_handler_revision(resource)
            self.runtime.apply(list(merged.values()))
            self._resources = merged
        return self._summary()

    def delete(self, *names: str | Resource) -> Rows:
        """Stop resources, given as objects, keys (``Trigger/default/t``) or names (when only
        one resource has that name). Returns what runs now."""
        with self._lock:
            self._check_open()
            remaining = dict(self._resources)
            for name in names:
                remaining.pop(self._key_of(name, remaining))
            self.runtime.apply(list(remaining.values()))
            self._resources = remaining
        return self._summary()

    def _summary(self) -> Rows:
        return Rows(
            {"kind": r.kind, "namespace": r.namespace, "name": r.name} for r in self.resources
        )

    @staticmethod
    def _key_of(name: str | Resource, resources: dict[str, Resource]) -> str:
        if isinstance(name, Resource):
            return name.key
        if name in resources:
            return name
        found = [key for key, r in resources.items() if r.name == name]
        if len(found) != 1:
            what = "several resources" if found else "no resource"
            raise KeyError(f"{what} named {name!r}: use Kind/namespace/name ({sorted(resources)})")
        return found[0]

    # --- events --------------------------------------------------------------------------
    def _broker_key(self, broker: str | None) -> str:
        brokers = [r for r in self._resources.values() if isinstance(r, Broker)]
        if broker is None:
            if len(brokers) != 1:
                names = ", ".join(f"{b.namespace}/{b.name}" for b in brokers) or "none applied"
                raise ValueError(f"name the Broker with broker= (Brokers: {names})")
            return f"{brokers[0].namespace}/{brokers[0].name}"
        if "/" in broker:
            return broker
        found = [b for b in brokers if b.name == broker]
        if len(found) != 1:
            raise KeyError(f"no single Broker named {broker!r}; use namespace/name")
        return f"{found[0].namespace}/{found[0].name}"

    def send(self, event: CloudEvent, *, broker: str | None = None) -> Outcome:
        """Send one event into a Broker (the only one applied, or ``broker``); returns its
        Outcome once it, and the replies it caused, are finished."""
        (outcome,) = self.send_many([event], broker=broker)
        return outcome

    def send_many(
        self,
        events: Iterable[CloudEvent],
        *,
        broker: str | None = None,
        rate_per_s: float | None = None,
        batch_size: int = 50,
    ) -> list[Outcome]:
        """Send events into a Broker, all at once or paced at ``rate_per_s`` (batches of
        ``batch_size`` leave on schedule, without waiting for earlier ones, as a live
        stream would); returns one Outcome per event, in order."""
        self._check_open()
        key = self._broker_key(broker)
        batch = list(events)
        if rate_per_s is None:
            return self.runtime.send(key, batch, batch_size=max(1, batch_size))
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        size = max(1, min(batch_size, int(rate_per_s) or 1))
        chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
        interval_s = size / rate_per_s
        started = time.monotonic()
        futures: list[Future[list[Outcome]]] = []
        with ThreadPoolExecutor(max_workers=64, thread_name_prefix="knray-send") as pool:
            for index, chunk in enumerate(chunks):
                delay = started + index * interval_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(self.runtime.send, key, chunk, batch_size=size))
            outcomes: list[Outcome] = []
            for future in futures:
                outcomes.extend(future.result())
        return outcomes

    # --- observe -------------------------------------------------------------------------
    def events(self, trigger: str | None = None, *, limit: int = 20) -> Rows:
        """The latest events each Trigger delivered (or dead-lettered, ...), oldest first:
        ``trigger`` by name, ``namespace/name`` or key; all Triggers when None. Each
        dispatcher keeps the last 100 per Trigger."""
        key = None if trigger is None else self._trigger_key(trigger)
        rows = self.runtime.deliveries(key, limit)
        return Rows(
            {
                "seconds": round(row["time_s"] - self._wall_started_at, 3),
                **{name: value for name, value in row.items() if name != "time_s"},
                "trigger": short_name(row["trigger"]),
            }
            for row in rows
        )

    @property
    def _wall_started_at(self) -> float:
        return time.time() - (time.monotonic() - self._started_at)

    def _trigger_key(self, trigger: str) -> str:
        if trigger.startswith("Trigger/"):
            return trigger
        triggers = [r for r in self._resources.values() if isinstance(r, Trigger)]
        if "/" in trigger:
            return f"Trigger/{trigger}"
        found = [t.key for t in triggers if t.name == trigger]
        if len(found) != 1:
            raise KeyError(
                f"no single Trigger named {trigger!r} (Triggers: {sorted(t.key for t in triggers)})"
            )
        return found[0]

    def stats(self) -> Rows:
        """Counters per Trigger: matched, delivered, retries, dead_lettered, dropped,
        failed, replies."""
        triggers = self.runtime.status()["triggers"]
        return Rows(
            {"trigger": short_name(key), "namespace": key.split("/")[1], **counters}
            for key, counters in sorted(triggers.items())
        )

    def services(self) -> Rows:
        """Running replicas, bounds and state per Service."""
        services = self.runtime.service_status()
        return Rows(
            {"service": short_name(key), "namespace": key.split("/")[0], **values}
            for key, values in sorted(services.items())
        )

    def history(self) -> Rows:
        """Samples since the session started, long format: elapsed_s, kind, name, metric
        (``delivered_per_s`` per Trigger, ``replicas`` per Service), value."""
        return self._history.rows()

    def plot(self, *, title: str = "knray: throughput and replicas") -> Any:
        """A matplotlib Figure of :meth:`history`: throughput per Trigger, replicas per
        Service (needs ``pip install 'knray[notebook]'``)."""
        return plot_history(self._history, title=title)

    def wait(self, seconds: float) -> None:
        """Let time pass (traffic drains, replicas scale down) while history keeps sampling."""
        time.sleep(seconds)

    def _sample_loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            with self._lock:
                if self._closed or not self._resources:
                    continue
                try:
                    status = self.runtime.status()
                except Exception:  # a sample missed is not worth breaking the session
                    continue
            self._history.add(time.monotonic() - self._started_at, status)

    # --- stop ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this knray session is closed; start another with knray.local()")

    def close(self) -> None:
        """Drain and remove everything this session started; stop Ray if it started it."""
        global _current  # noqa: PLW0603 - one session per process
        if self._closed:
            return
        if _current is self:
            _current = None
        self._stop.set()
        self._sampler.join(timeout=_STOP_TIMEOUT_S)
        with self._lock:
            self._closed = True
            try:
                self.runtime.shutdown(drain=True)
            finally:
                if self._started_ray:
                    disconnect()

    def __enter__(self) -> Local:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _collect(items: Sequence[ResourceInput]) -> list[Resource]:
    resources: list[Resource] = []
    for item in items:
        if isinstance(item, Resource):
            resources.append(item)
        elif isinstance(item, str | Path):
            resources.extend(load_manifests(item))
        else:
            resources.extend(_collect(list(item)))
    return resources


def _with_handler_revision(resource: Resource) -> Resource:
    """Stamp a Service whose handler lives in ``__main__`` with its definition's revision."""
    if not isinstance(resource, KnativeService):
        return resource
    template = resource.spec.template
    spec = template.metadata.annotations.get(HANDLER_ANNOTATION) or resource.annotations.get(
        HANDLER_ANNOTATION, ""
    )
    if not spec.startswith(_MAIN_PREFIX):
        return resource
    target: Any = sys.modules.get("__main__")
    for part in spec.removeprefix(_MAIN_PREFIX).split("."):
        target = getattr(target, part, None)
    if target is None:
        return resource  # deploying reports the missing handler with the Service's name
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):
        source = ""
    # The object's identity changes when its cell runs again, even with the same source.
    revision = hashlib.sha256(f"{id(target)}\n{source}".encode()).hexdigest()[:12]
    labels = {**template.metadata.labels, HANDLER_REVISION_LABEL: revision}
    metadata = template.metadata.model_copy(update={"labels": labels})
    new_template = template.model_copy(update={"metadata": metadata})
    return resource.model_copy(
        update={"spec": resource.spec.model_copy(update={"template": new_template})}
    )

"""A Broker's HTTP ingress: CloudEvents POSTed to ``/<namespace>/<broker>``.

Answers as knative/eventing ``pkg/broker/ingress/ingress_handler.go`` does: ``Allow: POST,
OPTIONS`` on every response; OPTIONS is 200 with ``WebHook-Allowed-Origin: *`` and
``WebHook-Allowed-Rate: *`` (the CloudEvents HTTP webhook handshake); other methods than POST
405; the path ``/`` 404 and a path that is not ``/<namespace>/<broker>`` 400; an event that
cannot be decoded or is invalid 400; a ``knativebrokerttl`` that is <= 0 after the ingress's
decrement 400 (``receive``: "dropping event based on TTL status"); 202 once the event is
accepted. knative/specs ``specs/eventing/data-plane.md``: a URL that is no endpoint is 404 (an
unknown Broker), a recipient accepts only once the event is handled or stored, and 429/5xx
tell the sender to retry. knray additions: 413 for a body over ``max_body_bytes`` (Knative has
no limit), 503 with ``Retry-After`` under backpressure, the batched content mode (one request,
all events accepted or none), and a short plain-text reason on every error.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol

from aiohttp import web

from knray.broker.ingress import DEFAULT_TTL, TTL_EXTENSION, read_ttl, stamp_ingress
from knray.broker.outcome import EventSink
from knray.events import CloudEvent, from_http

__all__ = [
    "DEFAULT_HTTP_HOST",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_MAX_BODY_BYTES",
    "IngressServer",
    "Inlet",
    "SinkInlet",
    "broker_from_path",
]

_log = logging.getLogger(__name__)

DEFAULT_HTTP_HOST: Final = "127.0.0.1"
DEFAULT_HTTP_PORT: Final = 8000
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
_ALLOW: Final = "POST, OPTIONS"
_RETRY_AFTER_S: Final = "1"


class Inlet(Protocol):
    """Where a Broker's ingress puts accepted events (a queue, or a Kafka topic)."""

    async def accept(self, events: Sequence[CloudEvent]) -> str | None:
        """Take all of ``events`` (None) or none of them (the reason: the sender retries)."""
        ...


class SinkInlet:
    """An Inlet over an EventSink: accepted once every event's outcome is finished (a
    Kafka-class Broker's sink is its topic: finished means appended with ``acks=all``)."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink

    async def accept(self, events: Sequence[CloudEvent]) -> str | None:
        try:
            outcomes = await self._sink.deliver(events)
        except Exception as error:
            return f"the broker did not take the events: {error}"
        errors = [o.error or "not accepted" for o in outcomes if not o.finished]
        if errors or len(outcomes) != len(events):
            return f"the broker did not take the events: {errors[0] if errors else 'no outcome'}"
        return None


def broker_from_path(path: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of ``/<namespace>/<name>`` (one trailing ``/`` allowed), or None."""
    parts = path.removesuffix("/").split("/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _text(status: int, reason: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n", headers={"Allow": _ALLOW, **headers})


class IngressServer:
    """The HTTP ingress of every Broker ``inlets`` knows (``inlets(namespace, name)``).

    ``port`` 0 binds a free port; :meth:`start` returns the bound port.
    """

    def __init__(
        self,
        inlets: Callable[[str, str], Inlet | None],
        *,
        host: str = DEFAULT_HTTP_HOST,
        port: int = DEFAULT_HTTP_PORT,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        default_ttl: int = DEFAULT_TTL,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        self._inlets = inlets
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self._default_ttl = default_ttl
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._codes: dict[str, Counter[int]] = {}

    def url(self, namespace: str, name: str) -> str:
        """The address of a Broker's ingress."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/{namespace}/{name}"

    async def start(self) -> int:
        """Listen; returns the bound port."""
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Stop listening; requests in progress are answered first."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stats(self) -> dict[str, dict[str, int]]:
        """Responses by status code, per ``namespace/name`` path that named a Broker."""
        return {
            key: {str(code): n for code, n in sorted(codes.items())}
            for key, codes in self._codes.items()
        }

    async def _handle(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return web.Response(
                status=200,
                headers={
                    "Allow": _ALLOW,
                    "WebHook-Allowed-Origin": "*",
                    "WebHook-Allowed-Rate": "*",
                },
            )
        if request.method != "POST":
            return _text(405, f"method {request.method} not allowed: POST an event")
        if request.path == "/":
            return _text(404, "POST events to /<namespace>/<broker>")
        broker = broker_from_path(request.path)
        if broker is None:
            return _text(400, f"bad path {request.path!r}: expected /<namespace>/<broker>")
        namespace, name = broker
        inlet = self._inlets(namespace, name)
        if inlet is None:
            return _text(404, f"no Broker {namespace}/{name}")
        key = f"{namespace}/{name}"
        response = await self._receive(request, inlet, key)
        self._codes.setdefault(key, Counter())[response.status] += 1
        return response

    async def _receive(self, request: web.Request, inlet: Inlet, key: str) -> web.Response:
        too_large = f"body over the ingress limit of {self.max_body_bytes} bytes"
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return _text(413, too_large)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _text(413, too_large)
        try:
            events = from_http(request.headers, body)
        except ValueError as error:  # InvalidEventError: undecodable or invalid event
            return _text(400, f"invalid event: {error}")
        now = self._clock()
        stamped: list[CloudEvent] = []
        for event in events:
            ready = stamp_ingress(event, now, self._default_ttl)
            ttl = read_ttl(ready)
            if ttl is None or ttl <= 0:
                _log.debug("broker %s: event %s refused: TTL exhausted", key, event.get("id"))
                return _text(400, f"event {event.get('id')!s}: {TTL_EXTENSION} exhausted")
            stamped.append(ready)
        if not stamped:
            return _text(202, "accepted 0 events")
        refused = await inlet.accept(stamped)
        if refused is not None:
            return _text(503, refused, **{"Retry-After": _RETRY_AFTER_S})
        return web.Response(status=202, headers={"Allow": _ALLOW})

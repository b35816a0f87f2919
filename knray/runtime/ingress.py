"""The HTTP ingress of every Broker: one aiohttp server in one Ray actor per runtime.

In-memory Brokers get a bounded queue in this actor feeding their dispatcher actors (202 once
queued; 503 when full); Kafka-class Brokers answer 202 once their dispatcher actors appended
the event to the topic. An aiohttp server in an actor is one process and no Serve HTTP proxy
(knray runs Serve without one); it binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from typing import Any

from knray.broker.http_ingress import (
    DEFAULT_MAX_BODY_BYTES,
    IngressServer,
    Inlet,
    SinkInlet,
)
from knray.broker.ingress_queue import DEFAULT_QUEUE_CAPACITY, IngressQueue
from knray.runtime.targets import broker_pool

__all__ = ["IngressActor"]

_log = logging.getLogger(__name__)


class IngressActor:
    """Serves ``http://<host>:<port>/<namespace>/<broker>`` for the Brokers it is given."""

    def __init__(
        self,
        host: str,
        port: int,
        pool_size: int,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self._pool_size = pool_size
        self._queue_capacity = queue_capacity
        self._server = IngressServer(
            self._inlet, host=host, port=port, max_body_bytes=max_body_bytes
        )
        self._inlets: dict[str, Inlet] = {}
        self._classes: dict[str, str] = {}
        self._started = False
        gc.freeze()  # see knray.runtime.actors.BrokerActor

    def _inlet(self, namespace: str, name: str) -> Inlet | None:
        return self._inlets.get(f"{namespace}/{name}")

    async def start(self) -> int:
        """Listen (once); returns the bound port."""
        if not self._started:
            await self._server.start()
            self._started = True
        return self._server.port

    async def set_brokers(self, brokers: Mapping[str, str]) -> dict[str, str]:
        """Serve exactly these Brokers (``namespace/name`` -> class ``memory`` or ``kafka``);
        returns each one's address."""
        for key in list(self._inlets):
            if brokers.get(key) != self._classes.get(key):
                inlet = self._inlets.pop(key)
                self._classes.pop(key, None)
                if isinstance(inlet, IngressQueue):
                    # Its dispatchers are gone (or of another class now): what it holds
                    # cannot reach them.
                    if inlet.held:
                        _log.warning("Broker %s removed with %d queued events", key, inlet.held)
                    await inlet.close()
        for key, kind in brokers.items():
            if key in self._inlets:
                continue
            sink = broker_pool(key, self._pool_size, stamped=True)
            if kind == "kafka":
                self._inlets[key] = SinkInlet(sink)
            else:
                self._inlets[key] = IngressQueue(sink, capacity_events=self._queue_capacity)
            self._classes[key] = kind
        return self.addresses()

    def addresses(self) -> dict[str, str]:
        return {key: self._server.url(*key.split("/", 1)) for key in sorted(self._inlets)}

    async def stats(self) -> dict[str, Any]:
        """Per Broker: address, class, responses by status code, queue counters."""
        codes = self._server.stats()
        brokers: dict[str, Any] = {}
        for key, url in self.addresses().items():
            entry: dict[str, Any] = {"address": url, "class": self._classes[key]}
            entry["responses"] = codes.get(key, {})
            inlet = self._inlets[key]
            if isinstance(inlet, IngressQueue):
                entry.update(inlet.stats())
            brokers[key] = entry
        return {"address": self._server.url("", "").removesuffix("//"), "brokers": brokers}

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Stop listening, then deliver what the queues hold; returns events left undelivered."""
        await self._server.stop()
        left = 0
        for inlet in self._inlets.values():
            if isinstance(inlet, IngressQueue):
                left += await inlet.drain(timeout_s)
                await inlet.close()
        return left

    async def ready(self) -> bool:
        return True

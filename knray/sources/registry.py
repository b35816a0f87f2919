"""Which consumer runs each source kind: one line per kind.

A kind's module exposes ``consumer(source, sink, index, options) -> Source``: ``index`` is the
member number (0 .. ``consumer_count - 1``), ``options`` keyword settings for the consumer
(batch sizes, a clock, ...). Modules are imported on first use, so the client library of a
kind (an optional extra) is needed only when that kind runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Final

from knray.broker.outcome import EventSink
from knray.errors import KnrayError
from knray.manifests import Resource
from knray.sources.source import Source

__all__ = [
    "SOURCE_CONSUMERS",
    "ConsumerFactory",
    "SourceUnavailableError",
    "consumer_count",
    "consumer_factory",
    "create_consumer",
]

ConsumerFactory = Callable[[Resource, EventSink, int, Mapping[str, Any]], Source]

# manifest kind -> "module:function", and the extra that installs its client library
SOURCE_CONSUMERS: Final[dict[str, tuple[str, str | None]]] = {
    "KafkaSource": ("knray.sources.kafka:consumer", None),
    "PingSource": ("knray.sources.ping:consumer", None),
    "RabbitmqSource": ("knray.sources.rabbitmq:consumer", "rabbitmq"),
    "RedisStreamSource": ("knray.sources.redis_streams:consumer", "redis"),
    "NatsJetStreamSource": ("knray.sources.nats_jetstream:consumer", "nats"),
    "RocketMQSource": ("knray.sources.rocketmq:consumer", "rocketmq"),
}
# Kinds whose spec.consumers sets the number of group members; every other kind runs one
# consumer (a PingSource must: one event per tick).
_SCALED_KINDS: Final = frozenset({"KafkaSource", "RedisStreamSource"})


class SourceUnavailableError(KnrayError, LookupError):
    """A source kind has no consumer, or its client library is not installed."""


def consumer_factory(kind: str) -> ConsumerFactory:
    """The consumer factory of ``kind``; imports its module (and client library)."""
    entry = SOURCE_CONSUMERS.get(kind)
    if entry is None:
        raise SourceUnavailableError(
            f"knray runs no {kind} (it runs {', '.join(SOURCE_CONSUMERS)})"
        )
    target, extra = entry
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        hint = f": pip install 'knray[{extra}]'" if extra else ""
        raise SourceUnavailableError(
            f"{kind} needs a client library that is not installed ({error.name}){hint}"
        ) from error
    factory: ConsumerFactory = getattr(module, attribute)
    return factory


def consumer_count(source: Resource) -> int:
    """How many consumers (group members) run for ``source``."""
    if source.KIND in _SCALED_KINDS:
        count: int = getattr(source, "spec").consumers  # noqa: B009
        return count
    return 1


def create_consumer(
    source: Resource,
    sink: EventSink,
    *,
    index: int = 0,
    options: Mapping[str, Any] | None = None,
) -> Source:
    """A consumer of ``source`` delivering to ``sink``."""
    return consumer_factory(source.KIND)(source, sink, index, dict(options or {}))

"""The source registry and the manifests of the message-server sources (no servers)."""

from __future__ import annotations

import pytest

from knray.errors import ManifestError
from knray.manifests import SOURCE_TYPES, load_manifests
from knray.sources.registry import (
    SOURCE_CONSUMERS,
    SourceUnavailableError,
    consumer_count,
    consumer_factory,
)

SINK = "  sink: {uri: 'http://sink/'}\n"


def one(text: str) -> object:
    (resource,) = load_manifests(text)
    return resource


def test_every_source_kind_has_a_consumer() -> None:
    assert {kind.KIND for kind in SOURCE_TYPES} == set(SOURCE_CONSUMERS)
    for kind in SOURCE_CONSUMERS:
        assert callable(consumer_factory(kind))


def test_an_unknown_kind_is_named() -> None:
    with pytest.raises(SourceUnavailableError, match="knray runs no GitHubSource"):
        consumer_factory("GitHubSource")


def test_consumer_counts() -> None:
    redis = one(
        "apiVersion: sources.knative.dev/v1alpha1\nkind: RedisStreamSource\n"
        "metadata: {name: r}\nspec:\n  address: 127.0.0.1:6379\n  stream: s\n"
        "  consumers: 3\n" + SINK
    )
    ping = one(
        "apiVersion: sources.knative.dev/v1\nkind: PingSource\nmetadata: {name: p}\n"
        "spec:\n  schedule: '*/1 * * * *'\n" + SINK
    )
    assert consumer_count(redis) == 3  # type: ignore[arg-type]
    assert consumer_count(ping) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            "apiVersion: sources.knative.dev/v1alpha1\nkind: RabbitmqSource\nmetadata: {name: q}\n"
            "spec:\n  rabbitmqClusterReference: {name: rabbit}\n"
            "  rabbitmqResourcesConfig: {queueName: q}\n" + SINK,
            "spec.rabbitmqResourcesConfig: 'exchangeName' is required when 'predeclared' is false",
        ),
        (
            "apiVersion: sources.knative.dev/v1alpha1\nkind: RabbitmqSource\nmetadata: {name: q}\n"
            "spec:\n  rabbitmqClusterReference: {name: rabbit}\n"
            "  rabbitmqResourcesConfig: {queueName: q, predeclared: true, parallelism: 0}\n" + SINK,
            "spec.rabbitmqResourcesConfig.parallelism",
        ),
        (
            "apiVersion: sources.knray.dev/v1alpha1\nkind: NatsJetStreamSource\n"
            "metadata: {name: n}\nspec:\n  servers: [nats://h:4222]\n  stream: a.b\n" + SINK,
            "spec.stream: invalid JetStream name 'a.b'",
        ),
        (
            "apiVersion: sources.knray.dev/v1alpha1\nkind: NatsJetStreamSource\n"
            "metadata: {name: n}\nspec:\n  servers: [nats://h:4222]\n  stream: s\n"
            "  ackWait: PT0S\n" + SINK,
            "spec.ackWait: ackWait 'PT0S' must be positive",
        ),
        (
            "apiVersion: sources.knative.dev/v1alpha1\nkind: RedisStreamSource\n"
            "metadata: {name: r}\nspec:\n  address: h:6379\n  stream: s\n"
            "  dialOptions: {cert: {secretKeyRef: {name: c, key: k}}}\n" + SINK,
            "spec.dialOptions.cert: client certificates are not supported by knray",
        ),
    ],
)
def test_bad_source_manifests_name_the_field(document: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_manifests(document)

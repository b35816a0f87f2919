"""Why a Kafka client could not connect, said in one error that names who was connecting.

aiokafka's ``start()`` fails with ``KafkaConnectionError("Unable to bootstrap from [...]")``
whatever the cause, and only logs the cause (a wrong password, an untrusted certificate, a
listener of another protocol). On that failure :func:`connect_error` connects once more to each
bootstrap server with the same settings to learn the cause, and returns a
:class:`KafkaConnectError` naming the resource (``KafkaSource shop/orders``, ``Broker
shop/default``), the servers, the protocol and SASL mechanism, and the broker's answer. No
credential is ever part of it (see :mod:`knray.sources.kafka_security`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Sequence
from typing import Any, Final, TypeVar

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from knray.errors import KnrayError
from knray.sources.kafka_security import KafkaSecurity

__all__ = ["KafkaConnectError", "connect_error", "connect_or_explain"]

_PROBE_TIMEOUT_S: Final = 10.0
_MAX_PROBED: Final = 3


class KafkaConnectError(KnrayError, ConnectionError):
    """A Kafka client of a knray resource could not connect; the message says why."""


T = TypeVar("T")


async def connect_or_explain(
    step: Awaitable[T], what: str, servers: str | Sequence[str], security: KafkaSecurity
) -> T:
    """``await step`` (a client's ``start()``, ...); when it cannot connect, raise
    :class:`KafkaConnectError` saying why."""
    try:
        return await step
    except KafkaConnectionError as error:
        raise await connect_error(what, servers, security, error) from error


async def connect_error(
    what: str, servers: str | Sequence[str], security: KafkaSecurity, error: BaseException
) -> KafkaConnectError:
    """The error to raise after ``error``: each bootstrap server's reason, found by one more
    connection attempt with ``security``."""
    hosts = collect_hosts(servers if isinstance(servers, str) else list(servers), False)
    reasons = [
        f"{host}:{port}: {await _probe(host, port, security)}"
        for host, port, _ in hosts[:_MAX_PROBED]
    ]
    if len(hosts) > _MAX_PROBED:
        reasons.append(f"{len(hosts) - _MAX_PROBED} more servers not probed")
    listed = ", ".join(f"{host}:{port}" for host, port, _ in hosts)
    return KafkaConnectError(
        f"{what}: cannot connect to Kafka at {listed} over {security.describe()}: "
        + "; ".join(reasons or [str(error)])
    )


async def _probe(host: str, port: int, security: KafkaSecurity) -> str:
    options: dict[str, Any] = security.client_options()
    try:
        conn = await asyncio.wait_for(
            create_conn(host, port, request_timeout_ms=int(_PROBE_TIMEOUT_S * 1000), **options),
            _PROBE_TIMEOUT_S,
        )
    except Exception as error:  # the reason is what this function is for
        return _reason(error, security)
    conn.close()
    return "connected on a second attempt (a transient failure?)"


def _reason(error: BaseException, security: KafkaSecurity) -> str:
    # Each branch says what the broker's answer means; none prints a setting's value.
    if isinstance(error, SaslAuthenticationFailed):
        return f"authentication failed, wrong user or password? (the broker: {_text(error)})"
    if isinstance(error, UnsupportedSaslMechanismError):
        return f"the broker refused the SASL mechanism {security.mechanism} ({_text(error)})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"TLS: the broker's certificate is not trusted ({error.verify_message}); "
            "is the CA certificate the one that signed it?"
        )
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed ({error.reason or error}); a client certificate missing?"
    if isinstance(error, TimeoutError):
        return (
            f"no answer within {_PROBE_TIMEOUT_S:.0f} s (a TLS client on a listener without "
            "TLS waits like this)"
        )
    if isinstance(error, KafkaConnectionError):
        hint = f"does this listener speak {security.protocol}?"
        if security.ssl_context is not None:
            # With TLS 1.3 a refused client certificate shows only as a closed connection.
            hint = (
                f"does this listener speak {security.protocol}, or did it refuse the client "
                "certificate?"
                if security.client_certificate
                else f"does this listener speak {security.protocol}, or does it require a "
                "client certificate (none was given)?"
            )
        return f"the broker closed the connection ({_text(error)}); {hint}"
    if isinstance(error, OSError):  # refused, unreachable, unknown host
        return os.strerror(error.errno) if error.errno else _text(error)
    return f"{type(error).__name__}: {_text(error)}"


def _text(error: BaseException) -> str:
    return str(error) or type(error).__name__

"""Is a Kafka-protocol broker answering? One ApiVersions v0 request over a plain socket.

ApiVersions v0 is the request every client sends first, and the one version every broker keeps
(Kafka 4 dropped many old request versions, Metadata v0-v3 among them: KIP-896), so the probe
works for Apache Kafka 4 and Tansu alike without a client library.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

__all__ = ["answers_kafka"]

_API_VERSIONS_KEY: Final = 18
_CORRELATION_ID: Final = 7


def answers_kafka(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when ``host:port`` answers a Kafka ApiVersions request with its correlation id."""
    client_id = b"knray-probe"
    # Request header v1: api key, api version, correlation id, client id; ApiVersions v0 has
    # an empty body. The frame is prefixed by its size.
    body = struct.pack(">hhih", _API_VERSIONS_KEY, 0, _CORRELATION_ID, len(client_id))
    body += client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _read_exactly(sock, 8)
    except OSError:
        return False
    if header is None:
        return False
    _size, answered = struct.unpack(">ii", header)
    return bool(answered == _CORRELATION_ID)


def _read_exactly(sock: socket.socket, count: int) -> bytes | None:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data

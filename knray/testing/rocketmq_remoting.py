"""The little of RocketMQ's remoting protocol that tests need (standard library only).

Tests must create topics and consumer groups (RocketMQ 5's proxy refuses a consumer whose
group does not exist, and it never creates topics) and publish messages. The admin tool
(``mqadmin``) starts a JVM per command, about four seconds each; Apache's Python client
speaks gRPC to the proxy, cannot create topics, and only the source module imports it. The
remoting protocol, which every broker and NameServer serves, does all three in milliseconds.

A frame (``RemotingCommand.encode`` in rocketmq-remoting): a 4-byte big-endian length of the
rest, a 4-byte word whose top byte is the header's serialization (0, JSON) and whose lower
three bytes are the header's length, the JSON header (``code``, ``opaque``, ``extFields``
with string values), then the body.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "GET_ROUTEINFO_BY_TOPIC",
    "SEND_MESSAGE",
    "SUCCESS",
    "TOPIC_NOT_EXIST",
    "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP",
    "UPDATE_AND_CREATE_TOPIC",
    "BrokerClient",
    "RemotingClient",
    "RemotingError",
    "encode_properties",
]

# RequestCode and ResponseCode (rocketmq-remoting, org.apache.rocketmq.remoting.protocol)
SEND_MESSAGE: Final = 10
UPDATE_AND_CREATE_TOPIC: Final = 17
GET_ROUTEINFO_BY_TOPIC: Final = 105
UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: Final = 200
SUCCESS: Final = 0
TOPIC_NOT_EXIST: Final = 17

_JSON: Final = 0
_HEADER_LENGTH_MASK: Final = 0xFFFFFF
# MessageDecoder.NAME_VALUE_SEPARATOR and PROPERTY_SEPARATOR
_NAME_VALUE: Final = "\x01"
_PROPERTY: Final = "\x02"


class RemotingError(RuntimeError):
    """The server answered a request with an error code."""

    def __init__(self, code: int, remark: str | None, request: int) -> None:
        super().__init__(f"RocketMQ request {request} failed with code {code}: {remark or ''}")
        self.code = code
        self.remark = remark


def encode_properties(properties: Mapping[str, str]) -> str:
    """A message's properties as the protocol carries them (``messageProperties2String``)."""
    for name, value in properties.items():
        if {_NAME_VALUE, _PROPERTY} & set(name + value):
            raise ValueError(f"property {name!r} holds a protocol separator (\\x01 or \\x02)")
    return "".join(f"{name}{_NAME_VALUE}{value}{_PROPERTY}" for name, value in properties.items())


class RemotingClient:
    """One connection to a broker or NameServer (``host:port``), opened on first use; calls
    from several threads take turns."""

    def __init__(self, address: str, timeout_s: float = 10.0) -> None:
        host, _, port = address.rpartition(":")
        self.host = host
        self.port = int(port)
        self.timeout_s = timeout_s
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._opaque = itertools.count(1)

    def request(
        self, code: int, fields: Mapping[str, Any] | None = None, body: bytes = b""
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request and return the response's header and body; raise RemotingError
        when the response code is not SUCCESS."""
        header, payload = self.call(code, fields, body)
        if header.get("code") != SUCCESS:
            raise RemotingError(int(header.get("code", -1)), header.get("remark"), code)
        return header, payload

    def call(
        self, code: int, fields: Mapping[str, Any] | None = None, body: bytes = b""
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request and return the response's header and body, whatever its code."""
        opaque = next(self._opaque)
        header = {
            "code": code,
            "language": "PYTHON",
            "version": 0,
            "opaque": opaque,
            "flag": 0,
            "extFields": {name: _text(value) for name, value in (fields or {}).items()},
        }
        encoded = json.dumps(header).encode()
        frame = struct.pack(">i", (_JSON << 24) | len(encoded)) + encoded + body
        with self._lock:
            sock = self._connected()
            try:
                sock.sendall(struct.pack(">i", len(frame)) + frame)
                (length,) = struct.unpack(">i", self._read(sock, 4))
                response = self._read(sock, length)
            except OSError:
                self._close()  # a half-read frame leaves the stream unusable
                raise
        (word,) = struct.unpack(">i", response[:4])
        header_length = word & _HEADER_LENGTH_MASK
        answer: dict[str, Any] = json.loads(response[4 : 4 + header_length])
        if answer.get("opaque") != opaque:
            raise RemotingError(-1, f"answer to request {answer.get('opaque')}", code)
        return answer, response[4 + header_length :]

    def close(self) -> None:
        with self._lock:
            self._close()

    def _connected(self) -> socket.socket:
        if self._socket is None:
            self._socket = socket.create_connection((self.host, self.port), self.timeout_s)
        return self._socket

    def _close(self) -> None:
        if self._socket is not None:
            sock, self._socket = self._socket, None
            sock.close()

    @staticmethod
    def _read(sock: socket.socket, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = sock.recv(size - len(chunks))
            if not chunk:
                raise ConnectionError("the RocketMQ server closed the connection")
            chunks += chunk
        return bytes(chunks)


class BrokerClient(RemotingClient):
    """The requests tests make of a Broker."""

    def create_topic(self, name: str, queues: int, message_type: str) -> None:
        """Create or update a topic (``message.type`` is a RocketMQ 5 topic attribute)."""
        self.request(
            UPDATE_AND_CREATE_TOPIC,
            {
                "topic": name,
                "defaultTopic": "TBW102",
                "readQueueNums": queues,
                "writeQueueNums": queues,
                "perm": 6,  # read and write
                "topicFilterType": "SINGLE_TAG",
                "topicSysFlag": 0,
                "order": False,
                "attributes": f"+message.type={message_type}",
            },
        )

    def create_group(self, name: str, max_retries: int) -> None:
        """Create or update a consumer group (a SubscriptionGroupConfig as JSON)."""
        config = {
            "groupName": name,
            "consumeEnable": True,
            "consumeFromMinEnable": True,
            "consumeBroadcastEnable": True,
            "retryMaxTimes": max_retries,
        }
        self.request(UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, body=json.dumps(config).encode())

    def send(
        self,
        topic: str,
        queue_id: int,
        body: bytes,
        *,
        tag: str | None,
        keys: Sequence[str],
        properties: Mapping[str, str],
    ) -> str:
        """Store one message in a queue of ``topic``; returns its message id."""
        message_id = uuid.uuid4().hex.upper()  # a client-made id, as Java's clients make
        system = {"UNIQ_KEY": message_id, "WAIT": "true"}
        if tag:
            system["TAGS"] = tag
        if keys:
            system["KEYS"] = " ".join(keys)  # MessageConst.KEY_SEPARATOR
        self.request(
            SEND_MESSAGE,
            {
                "producerGroup": "knray-test-producer",
                "topic": topic,
                "defaultTopic": "TBW102",
                "defaultTopicQueueNums": queue_id + 1,
                "queueId": queue_id,
                "sysFlag": 0,
                "bornTimestamp": int(time.time() * 1000),
                "flag": 0,
                "properties": encode_properties({**properties, **system}),
                "reconsumeTimes": 0,
                "unitMode": False,
                "batch": False,
            },
            body,
        )
        return message_id


def _text(value: Any) -> str:
    # extFields are a map of strings on the Java side; booleans are spelled as Java does.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

"""Apache RocketMQ 5 for tests: a NameServer, a Broker and a Proxy, on loopback.

:func:`start_rocketmq` fetches the NameServer and Proxy jars (the Proxy depends on the
Broker) from Maven Central once (see :mod:`knray.testing.jvm`), writes their configuration
into a temporary folder and starts three JVMs. The Proxy serves gRPC, which Apache's
``rocketmq-python-client`` (and so a RocketMQSource) speaks: :attr:`RocketMQServer.endpoint`
is what a RocketMQSource's ``namesrvAddr`` names. The Proxy runs in cluster mode: in local
mode (the Broker inside the Proxy's JVM, one JVM fewer) RocketMQ 5.3.3 and 5.5.0 corrupt a
receipt handle on its second ChangeInvisibleDuration (see knray.sources.rocketmq).

Topics, consumer groups and test messages go straight to the Broker over RocketMQ's
remoting protocol (:mod:`knray.testing.rocketmq_remoting`): milliseconds per call, where
the admin tool starts a JVM each time. The Proxy accepts a consumer only when its group
exists, so create the group before starting a consumer.

Sized for tests: small heaps, 16 MiB commit log files instead of 1 GiB, a small index,
disk-full thresholds that never refuse a write, no TLS, everything in one temporary folder
removed by :meth:`RocketMQServer.stop`. The NameServer and the Broker's main ports listen on
127.0.0.1 only; the Broker's HA port and the Proxy's ports cannot be bound to an address
and listen on every interface.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from knray.testing.jvm import JavaServer, fetch_jars
from knray.testing.process import HOST, ServerStartError, StopsOnExit, free_port, port_answers
from knray.testing.rocketmq_remoting import (
    GET_ROUTEINFO_BY_TOPIC,
    SUCCESS,
    BrokerClient,
    RemotingClient,
)

__all__ = ["ROCKETMQ_VERSION", "Message", "RocketMQServer", "start_rocketmq"]

ROCKETMQ_VERSION: Final = "5.5.0"
CLUSTER: Final = "DefaultCluster"
BROKER: Final = "broker-a"
_NAMESRV_MAIN: Final = "org.apache.rocketmq.namesrv.NamesrvStartup"
_BROKER_MAIN: Final = "org.apache.rocketmq.broker.BrokerStartup"
_PROXY_MAIN: Final = "org.apache.rocketmq.proxy.ProxyStartup"
_ROUTE_WAIT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class Message:
    """A message to publish: its body, tag, keys and user properties."""

    body: bytes | str
    tag: str | None = None
    keys: Sequence[str] = ()
    properties: Mapping[str, str] = field(default_factory=dict)


class RocketMQServer(StopsOnExit):
    """A running NameServer, Broker and Proxy; stop it, or use it as a context manager."""

    def __init__(
        self,
        *,
        version: str,
        workdir: Path,
        servers: Mapping[str, JavaServer],
        namesrv: str,
        broker: str,
        endpoint: str,
    ) -> None:
        self.version = version
        self.workdir = workdir
        self.servers = dict(servers)  # NameServer, Broker, Proxy
        self.namesrv = namesrv
        self.broker = broker
        self.endpoint = endpoint  # the Proxy's gRPC endpoint: a RocketMQSource's namesrvAddr
        self.startup_s = 0.0
        self._broker_client = BrokerClient(self.broker)
        self._namesrv_client = RemotingClient(self.namesrv)
        self._queues: dict[str, int] = {}
        self._next_queue = itertools.count()

    @property
    def pids(self) -> dict[str, int]:
        """The process id of each JVM: NameServer, Broker, Proxy."""
        return {name: server.pid for name, server in self.servers.items()}

    def alive(self) -> bool:
        return all(server.alive() for server in self.servers.values())

    def create_topic(self, name: str, *, queues: int = 4, message_type: str = "NORMAL") -> None:
        """Create (or update) a topic and wait until the NameServer routes it.

        ``message_type`` is RocketMQ 5's ``message.type`` attribute (NORMAL, FIFO, DELAY,
        TRANSACTION): the Proxy refuses to publish a message of another type.
        """
        self._broker_client.create_topic(name, queues, message_type)
        self._queues[name] = queues
        self.wait_for_route(name)

    def create_consumer_group(self, name: str, *, max_retries: int = 16) -> None:
        """Create (or update) a consumer group; ``max_retries`` deliveries before a message
        goes to the group's dead-letter topic."""
        self._broker_client.create_group(name, max_retries)

    def produce(
        self,
        topic: str,
        body: bytes | str,
        *,
        tag: str | None = None,
        keys: Sequence[str] = (),
        properties: Mapping[str, str] | None = None,
    ) -> str:
        """Publish one message; returns its message id (what a consumer sees)."""
        (message_id,) = self.send_messages(
            topic, [Message(body, tag, tuple(keys), dict(properties or {}))]
        )
        return message_id

    def send_messages(self, topic: str, messages: Iterable[Message | bytes | str]) -> list[str]:
        """Publish messages in order, spread over the topic's queues; returns their ids."""
        queues = self._queues.get(topic, 1)
        ids = []
        for item in messages:
            message = item if isinstance(item, Message) else Message(item)
            body = message.body.encode() if isinstance(message.body, str) else message.body
            ids.append(
                self._broker_client.send(
                    topic,
                    next(self._next_queue) % queues,
                    body,
                    tag=message.tag,
                    keys=message.keys,
                    properties=message.properties,
                )
            )
        return ids

    def stop(self) -> None:
        """Stop the JVMs and remove the temporary folder (data and logs)."""
        self._broker_client.close()
        self._namesrv_client.close()
        try:
            # Nothing here outlives the test, so no graceful shutdown (the Proxy's takes ~8 s).
            for server in reversed(self.servers.values()):
                server.stop(grace_s=0.5)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def wait_for_route(self, topic: str) -> None:
        """Return once the NameServer routes ``topic``."""
        deadline = time.monotonic() + _ROUTE_WAIT_S
        while True:
            header, _ = self._namesrv_client.call(GET_ROUTEINFO_BY_TOPIC, {"topic": topic})
            if header.get("code") == SUCCESS:
                return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"the NameServer at {self.namesrv} has no route for topic {topic!r} after "
                    f"{_ROUTE_WAIT_S:.0f} s: {header.get('remark')}"
                )
            time.sleep(0.05)


def start_rocketmq(
    *,
    version: str = ROCKETMQ_VERSION,
    broker_heap_mb: int = 256,
    proxy_heap_mb: int = 192,
    namesrv_heap_mb: int = 128,
    proxy_settings: Mapping[str, Any] | None = None,
    broker_settings: Mapping[str, Any] | None = None,
    timeout_s: float = 120.0,
) -> RocketMQServer:
    """Start a NameServer, a Broker and a Proxy on free loopback ports.

    ``proxy_settings`` and ``broker_settings`` add to or override the Proxy's (JSON) and the
    Broker's (properties) configuration. By default the Proxy accepts invisible durations
    and receive long-polls down to 1 s (10 s and 5 s in a stock Proxy), so that tests of
    redelivery and of stopping consumers stay short.

    Raises MissingToolError without Java or Maven, ServerStartError when the jars cannot be
    fetched or a server does not start within ``timeout_s``.
    """
    started = time.monotonic()
    jars = fetch_jars(
        "rocketmq",
        [
            f"org.apache.rocketmq:rocketmq-namesrv:{version}",
            f"org.apache.rocketmq:rocketmq-proxy:{version}",
        ],
    )
    workdir = Path(tempfile.mkdtemp(prefix="knray-rocketmq-"))
    namesrv_port = free_port()
    broker_port = _broker_port(taken={namesrv_port})
    broker_ports = {broker_port - 2, broker_port, broker_port + 1}
    grpc_port, remoting_port = _free_ports(2, taken={namesrv_port} | broker_ports)
    namesrv = f"{HOST}:{namesrv_port}"
    namesrv_conf = workdir / "namesrv.properties"
    _write_properties(namesrv_conf, {"listenPort": namesrv_port, "bindAddress": HOST})
    broker_conf = workdir / "broker.properties"
    _write_properties(broker_conf, _broker_config(workdir, namesrv, broker_port, broker_settings))
    proxy_conf = workdir / "proxy.json"
    proxy_conf.write_text(
        json.dumps(
            {
                "rocketMQClusterName": CLUSTER,
                "namesrvAddr": namesrv,
                "grpcServerPort": grpc_port,
                "remotingListenPort": remoting_port,
                "proxyMode": "cluster",
                # Both default to the machine's first network address.
                "localServeAddr": HOST,
                "remotingAccessAddr": HOST,
                # Stock minimums are 10 s and 5 s: tests of redelivery and of stopping
                # consumers would wait that long.
                "minInvisibleTimeMillsForRecv": 1000,
                "grpcClientConsumerMinLongPollingTimeoutMillis": 1000,
                **(proxy_settings or {}),
            }
        )
    )
    launches = {
        "NameServer": (_NAMESRV_MAIN, ["-c", str(namesrv_conf)], namesrv_heap_mb, 32),
        # Each Broker thread that writes (sends, acks, checkpoints) holds a direct buffer
        # of maxMessageSize (4 MiB): a small limit makes acks fail with OutOfMemoryError.
        "Broker": (_BROKER_MAIN, ["-c", str(broker_conf)], broker_heap_mb, 512),
        "Proxy": (_PROXY_MAIN, ["-pm", "cluster", "-pc", str(proxy_conf)], proxy_heap_mb, 64),
    }
    servers: dict[str, JavaServer] = {}
    try:
        # All at once: the Broker registers with the NameServer as it starts, and one that
        # came up first registers again 10 s later (see the Broker's configuration).
        for name, (main_class, arguments, heap_mb, direct_mb) in launches.items():
            servers[name] = JavaServer.start(
                f"RocketMQ {name}",
                classpath=[jars / "*"],
                main_class=main_class,
                arguments=arguments,
                jvm_options=_jvm_options(workdir, heap_mb, direct_mb=direct_mb),
                log_path=workdir / f"{name.lower()}.out",
                env={"ROCKETMQ_HOME": str(workdir)},
                cwd=workdir,
            )
        deadline = time.monotonic() + timeout_s
        for name, port in (("NameServer", namesrv_port), ("Broker", broker_port)):
            servers[name].wait_for_port(port, max(deadline - time.monotonic(), 1.0))
        servers["Proxy"].wait_for_port(grpc_port, max(deadline - time.monotonic(), 1.0))
        server = RocketMQServer(
            version=version,
            workdir=workdir,
            servers=servers,
            namesrv=namesrv,
            broker=f"{HOST}:{broker_port}",
            endpoint=f"{HOST}:{grpc_port}",
        )
        # The Broker registers a topic named after itself: routed means registered.
        server.wait_for_route(BROKER)
    except BaseException as error:
        for running in servers.values():
            running.stop(grace_s=0.5)
        if isinstance(error, ServerStartError):
            raise ServerStartError(f"{error}\nRocketMQ's own logs: {workdir / 'logs'}") from error
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    server.startup_s = time.monotonic() - started
    return server


def _broker_config(
    workdir: Path, namesrv: str, port: int, overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    store = workdir / "store"
    return {
        "brokerClusterName": CLUSTER,
        "brokerName": BROKER,
        "brokerId": 0,
        "brokerIP1": HOST,
        "brokerIP2": HOST,
        "bindAddress": HOST,
        "namesrvAddr": namesrv,
        "listenPort": port,
        "storePathRootDir": store,
        "storePathCommitLog": store / "commitlog",
        "autoCreateTopicEnable": False,  # topics exist because a test created them
        "registerNameServerPeriod": 10_000,  # the shortest the Broker allows (30 s default)
        # Small files: the defaults map a 1 GiB commit log and a ~400 MiB index.
        "mappedFileSizeCommitLog": 16 * 1024 * 1024,
        "mappedFileSizeConsumeQueue": 20 * 30_000,  # 20-byte entries
        "mappedFileSizeTimerLog": 4 * 1024 * 1024,
        "maxHashSlotNum": 10_000,
        "maxIndexNum": 40_000,
        # Percent of the disk in use: never refuse or delete in a test.
        "diskMaxUsedSpaceRatio": 99,
        "diskSpaceWarningLevelRatio": 99,
        "diskSpaceCleanForciblyRatio": 99,
        **(overrides or {}),
    }


def _jvm_options(workdir: Path, heap_mb: int, *, direct_mb: int) -> list[str]:
    return [
        f"-Xms{heap_mb}m",
        f"-Xmx{heap_mb}m",
        f"-XX:MaxDirectMemorySize={direct_mb}m",
        "-XX:+UseSerialGC",  # one GC thread: the machines running tests are small
        "-XX:TieredStopAtLevel=1",  # quick compiles: a test server starts often, runs briefly
        # No TLS: making the self-signed certificate of "permissive" mode costs seconds of CPU.
        "-Dtls.server.mode=disabled",
        # RocketMQ writes its logs (and the NameServer its KV config) under user.home.
        f"-Duser.home={workdir}",
        f"-Drocketmq.home.dir={workdir}",
    ]


def _write_properties(path: Path, values: Mapping[str, Any]) -> None:
    lines = [f"{key}={_property(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")


def _property(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _broker_port(taken: set[int]) -> int:
    """A port P with P-2 (the Broker's second "fast" server) and P+1 (its HA service)
    free too, none of them in ``taken``."""
    for _ in range(50):
        port = free_port()
        wanted = (port - 2, port, port + 1)
        if port > 1026 and not taken & set(wanted) and not any(map(port_answers, wanted)):
            with contextlib.ExitStack() as stack:
                if all(_bindable(p, stack) for p in wanted):
                    return port
    raise ServerStartError("found no three free loopback ports for the RocketMQ Broker")


def _bindable(port: int, stack: contextlib.ExitStack) -> bool:
    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    try:
        sock.bind(("", port))  # the Broker's HA service binds every interface
    except OSError:
        return False
    return True


def _free_ports(count: int, taken: set[int]) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken and port not in ports:
            ports.append(port)
    return ports

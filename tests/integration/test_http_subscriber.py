"""HttpSubscriber and the dispatcher against real aiohttp servers on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from knray.broker import DeliveryStatus
from knray.broker.dispatcher import Dispatcher, Route
from knray.broker.http_subscriber import HttpSubscriber
from knray.broker.retry import DeliveryPolicy
from knray.events import CloudEvent
from knray.filters import ExactFilter

pytestmark = pytest.mark.integration

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp server on 127.0.0.1 (random port) recording every request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.read()))
        return await self.handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def event(event_id: str = "1", **extra: Any) -> CloudEvent:
    data = extra.pop("data", None)
    attributes = {"specversion": "1.0", "id": event_id, "source": "/src", "type": "t"}
    return CloudEvent(attributes | extra, data)


async def accept(request: web.Request) -> web.StreamResponse:
    return web.Response(status=202)


async def test_binary_mode_headers_are_exact(serve: Any) -> None:
    server = await serve(accept)
    async with HttpSubscriber(server.url) as sub:
        e = CloudEvent(
            {
                "specversion": "1.0",
                "id": "a b",
                "source": "/src",
                "type": "order.created",
                "datacontenttype": "application/json",
                "vip": True,
            },
            {"n": 1},
        )
        plain = event("2")
        responses = await sub.send([e, plain], timeout_s=5)
    assert [r.code for r in responses] == [202, 202]
    assert all(r.reply is None for r in responses)
    by_id = {headers["ce-id"]: (headers, body) for headers, body in server.requests}
    headers, body = by_id["a%20b"]
    ce = {k.lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
    assert ce == {
        "ce-specversion": "1.0",
        "ce-id": "a%20b",
        "ce-source": "/src",
        "ce-type": "order.created",
        "ce-vip": "true",
    }
    assert headers["Content-Type"] == "application/json"
    assert headers["Prefer"] == "reply"
    assert json.loads(body) == {"n": 1}
    plain_headers, plain_body = by_id["2"]
    assert "Content-Type" not in plain_headers  # no datacontenttype: no Content-Type
    assert plain_body == b""


async def test_reply_in_binary_and_structured_mode(serve: Any) -> None:
    async def reply(request: web.Request) -> web.StreamResponse:
        if request.headers["ce-id"] == "1":
            return web.Response(
                status=200,
                headers={
                    "ce-specversion": "1.0",
                    "ce-id": "r1",
                    "ce-source": "/h",
                    "ce-type": "reply",
                    "Content-Type": "text/plain",
                },
                body=b"hello",
            )
        if request.headers["ce-id"] == "2":
            body = {"specversion": "1.0", "id": "r2", "source": "/h", "type": "reply", "data": 7}
            return web.Response(
                status=200,
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/cloudevents+json"},
            )
        if request.headers["ce-id"] == "3":
            return web.Response(status=200, text="not an event")
        return web.Response(
            status=200, body=b"{}", headers={"Content-Type": "application/cloudevents+json"}
        )

    server = await serve(reply)
    async with HttpSubscriber(server.url) as sub:
        r1, r2, r3, r4 = await sub.send([event("1"), event("2"), event("3"), event("4")], 5)
    assert r1.code == 200
    assert r1.reply is not None
    assert (r1.reply.get_id(), r1.reply.get_data()) == ("r1", "hello")
    assert r2.reply is not None
    assert r2.reply.get_data() == 7
    # A non-CloudEvent body is no reply; a malformed one is 502 (filter_handler.go).
    assert (r3.code, r3.reply) == (200, None)
    assert (r4.code, r4.reply) == (502, None)


async def test_failure_body_and_retry_after(serve: Any) -> None:
    async def busy(request: web.Request) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": "3"}, body=b"slow down")

    server = await serve(busy)
    async with HttpSubscriber(server.url) as sub:
        [response] = await sub.send([event()], 5)
    assert (response.code, response.retry_after_s, response.body) == (429, 3.0, b"slow down")


async def test_slow_response_times_out(serve: Any) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1)
        return web.Response(status=200)

    server = await serve(slow)
    async with HttpSubscriber(server.url) as sub:
        [response] = await sub.send([event()], timeout_s=0.1)
    assert response.code is None
    assert "timed out" in (response.error or "")


async def test_connection_refused_is_no_response() -> None:
    async with HttpSubscriber("http://127.0.0.1:9/") as sub:
        [response] = await sub.send([event()], timeout_s=1)
    assert response.code is None


async def test_shared_session_is_not_closed() -> None:
    async with aiohttp.ClientSession() as session:
        sub = HttpSubscriber("http://127.0.0.1:9/", session)
        await sub.close()
        assert not session.closed


async def test_dispatcher_retries_503_then_delivers_and_dead_letters_over_http(serve: Any) -> None:
    attempts: dict[str, int] = {}

    async def flaky(request: web.Request) -> web.StreamResponse:
        event_id = request.headers["ce-id"]
        attempts[event_id] = attempts.get(event_id, 0) + 1
        if event_id == "good" and attempts[event_id] == 1:
            return web.Response(status=503)
        if event_id == "good":
            return web.Response(status=200)
        return web.Response(status=500, body=b"kaput")

    async def echo(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=200,
            headers={
                "ce-specversion": "1.0",
                "ce-id": "reply-" + request.headers["ce-id"],
                "ce-source": "/echo",
                "ce-type": "echo.reply",
            },
        )

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1)
        return web.Response(status=200)

    subscriber_server = await serve(flaky)
    echo_server = await serve(echo)
    slow_server = await serve(slow)
    dls_server = await serve(accept)
    replies_server = await serve(accept)
    async with aiohttp.ClientSession() as session:
        dls = HttpSubscriber(dls_server.url, session)
        routes = [
            Route(
                "Trigger/default/flaky",
                ExactFilter("type", "t"),
                HttpSubscriber(subscriber_server.url, session),
                DeliveryPolicy(retry=2, timeout_s=5),
                dead_letter=dls,
            ),
            Route(
                "Trigger/default/echo",
                ExactFilter("id", "good"),
                HttpSubscriber(echo_server.url, session),
            ),
            Route(
                "Trigger/default/slow",
                ExactFilter("id", "bad"),
                HttpSubscriber(slow_server.url, session),
                DeliveryPolicy(retry=1, timeout_s=0.1),
                dead_letter=dls,
            ),
            Route(
                "Trigger/default/replies",
                ExactFilter("type", "echo.reply"),
                HttpSubscriber(replies_server.url, session),
            ),
            Route("Trigger/default/never", ExactFilter("type", "never"), HttpSubscriber("x")),
        ]
        outcomes = await Dispatcher(routes, broker_name="default").deliver(
            [event("good"), event("bad")]
        )
    assert [o.status for o in outcomes] == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.DEAD_LETTERED,
    ]
    assert attempts == {"good": 2, "bad": 3}
    assert [h["ce-id"] for h, _ in replies_server.requests] == ["reply-good"]
    letters = {(h["ce-id"], h["ce-knativeerrordest"]): h for h, _ in dls_server.requests}
    assert set(letters) == {("bad", subscriber_server.url), ("bad", slow_server.url)}
    http_letter = letters[("bad", subscriber_server.url)]
    assert http_letter["ce-knativeerrorcode"] == "500"
    assert base64.b64decode(http_letter["ce-knativeerrordata"]) == b"kaput"
    timeout_letter = letters[("bad", slow_server.url)]
    assert timeout_letter["ce-knativeerrorcode"] == "500"
    assert base64.b64decode(timeout_letter["ce-knativeerrordata"]).startswith(b"dispatch error:")
    assert "ce-knativearrivaltime" in http_letter
    assert "ce-knativebrokerttl" not in http_letter

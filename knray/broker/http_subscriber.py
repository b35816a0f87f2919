"""A Subscriber at an HTTP URI: CloudEvents binary mode, one POST per event.

References: cloudevents/spec ``cloudevents/bindings/http-protocol-binding.md`` (binary mode);
knative/eventing ``pkg/kncloudevents/event_dispatcher.go`` (``Prefer: reply`` on every request;
a 2xx response that is not a CloudEvent is no reply; a failed response's body feeds
``knativeerrordata``), ``pkg/broker/filter/filter_handler.go`` (a malformed reply event is a 502
Bad Gateway) and ``pkg/kncloudevents/retries.go`` (Retry-After).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Final

import aiohttp

from knray.broker.dead_letter import ERROR_DATA_MAX_BODY_BYTES
from knray.broker.outcome import SubscriberResponse
from knray.broker.retry import parse_retry_after_s
from knray.errors import InvalidEventError
from knray.events import CloudEvent, from_http, to_http_binary

__all__ = ["HttpSubscriber"]

# filter_handler.go writeResponse: a reply that claims to be a CloudEvent but is not one.
_BAD_GATEWAY: Final = 502
_STRUCTURED_PREFIX: Final = "application/cloudevents"


class HttpSubscriber:
    """POSTs each event to ``uri`` in binary mode, at most ``max_concurrency`` at a time.

    Pass an ``aiohttp.ClientSession`` to share connections; otherwise one is created on first
    use and closed by :meth:`close` (or ``async with``).
    """

    def __init__(
        self,
        uri: str,
        session: aiohttp.ClientSession | None = None,
        *,
        max_concurrency: int = 100,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self._uri = uri
        self._session = session
        self._owns_session = session is None
        self._limit = asyncio.Semaphore(max_concurrency)

    @property
    def address(self) -> str:
        """The URI events are POSTed to."""
        return self._uri

    async def send(
        self, events: Sequence[CloudEvent], timeout_s: float | None
    ) -> list[SubscriberResponse]:
        """POST every event concurrently; one response per event, in order, never raising."""
        session = self._session_or_new()
        return list(await asyncio.gather(*(self._post(session, e, timeout_s) for e in events)))

    async def close(self) -> None:
        """Close the session if this subscriber created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> HttpSubscriber:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"HttpSubscriber({self._uri!r})"

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def _post(
        self, session: aiohttp.ClientSession, event: CloudEvent, timeout_s: float | None
    ) -> SubscriberResponse:
        try:
            headers, body = to_http_binary(event)
        except InvalidEventError as error:
            return SubscriberResponse(code=None, error=f"cannot encode event: {error}")
        # event_dispatcher.go: "Add `Prefer: reply` header no matter if a reply destination
        # is provided" (data-plane.md, derived reply events).
        headers["Prefer"] = "reply"
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self._limit:
            try:
                async with session.post(
                    self._uri,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    # Binary mode: no Content-Type unless the event has a datacontenttype.
                    skip_auto_headers=("Content-Type",),
                    allow_redirects=False,
                ) as response:
                    content = await response.read()
                    status = response.status
                    response_headers: Mapping[str, str] = response.headers
            except TimeoutError:
                return SubscriberResponse(code=None, error=f"timed out after {timeout_s}s")
            except (aiohttp.ClientError, OSError) as error:
                return SubscriberResponse(code=None, error=f"{type(error).__name__}: {error}")
        return _response(status, response_headers, content)


def _response(status: int, headers: Mapping[str, str], content: bytes) -> SubscriberResponse:
    if not 200 <= status < 300:
        return SubscriberResponse(
            code=status,
            error=f"HTTP {status}",
            retry_after_s=parse_retry_after_s(headers.get("Retry-After")),
            body=content[:ERROR_DATA_MAX_BODY_BYTES],
        )
    if not _is_cloudevent(headers):
        # executeRequest: "Response is a non event, discard it" (an empty body included).
        return SubscriberResponse(code=status)
    try:
        replies = from_http(headers, content)
    except (InvalidEventError, ValueError) as error:
        return _malformed(f"malformed reply event: {error}", content)
    if len(replies) != 1:
        return _malformed(f"expected one reply event, got {len(replies)}", content)
    return SubscriberResponse(code=status, reply=replies[0])


def _is_cloudevent(headers: Mapping[str, str]) -> bool:
    # sdk-go binding ReadEncoding: binary with ce-specversion, structured/batch by media type.
    lowered = {name.lower(): value for name, value in headers.items()}
    if "ce-specversion" in lowered:
        return True
    return lowered.get("content-type", "").strip().lower().startswith(_STRUCTURED_PREFIX)


def _malformed(error: str, content: bytes) -> SubscriberResponse:
    return SubscriberResponse(
        code=_BAD_GATEWAY, error=error, body=content[:ERROR_DATA_MAX_BODY_BYTES]
    )

"""``knray send``: send CloudEvents to a Broker's HTTP ingress, or straight to a Kafka topic.

One event from options (``--type``, ``--source``, ``--data`` ...), or a file of events, one
structured-mode JSON CloudEvent per line. Every bad line is reported with its number before
anything is sent; every event that is not accepted is reported (and the exit code is 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from knray.broker.http_ingress import DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT
from knray.errors import InvalidEventError
from knray.events import CloudEvent, from_json, to_http_batch, to_http_binary, to_http_structured

__all__ = ["add_send_command"]

_DEFAULT_SOURCE: Final = "knray-send"
_RETRYABLE: Final = frozenset({408, 409, 429})
_MAX_SHOWN_FAILURES: Final = 20


@dataclass(frozen=True)
class _Item:
    label: str  # "line 7", or "event" for a single event from options
    event: CloudEvent


class _UsageError(ValueError):
    """Bad options or input: printed as an error, exit code 2."""


def _extensions(pairs: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise _UsageError(f"--extension {pair!r}: expected NAME=VALUE")
        result[name] = value
    return result


def _event_from_options(args: argparse.Namespace) -> CloudEvent:
    if not args.type:
        raise _UsageError("--type is required to send one event (or give --file)")
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": args.id or str(uuid.uuid4()),
        "source": args.source or _DEFAULT_SOURCE,
        "type": args.type,
    }
    if args.subject:
        attributes["subject"] = args.subject
    attributes.update(_extensions(args.extension))
    body: bytes | None = None
    content_type = args.content_type
    if args.data is not None and args.data_file is not None:
        raise _UsageError("give --data or --data-file, not both")
    if args.data is not None:
        body = args.data.encode("utf-8")
        if content_type is None:
            try:
                json.loads(args.data)
                content_type = "application/json"
            except ValueError:
                content_type = "text/plain; charset=utf-8"
    elif args.data_file is not None:
        try:
            body = Path(args.data_file).read_bytes()
        except OSError as error:
            raise _UsageError(f"--data-file: {error}") from None
        if content_type is None:
            content_type = mimetypes.guess_type(args.data_file)[0] or "application/octet-stream"
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    try:
        return CloudEvent.from_encoded(attributes, body)
    except InvalidEventError as error:
        raise _UsageError(f"invalid event: {error}") from None


def _events_from_file(path: str) -> list[_Item]:
    """Every event of a JSON-lines file; _UsageError naming every bad line (blank lines skipped)."""
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as error:
        raise _UsageError(f"--file: {error}") from None
    items: list[_Item] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(_Item(f"line {number}", from_json(line)))
        except ValueError as error:  # InvalidEventError, or undecodable text
            problems.append(f"{path}:{number}: {error}")
    if problems:
        raise _UsageError(
            f"{len(problems)} bad line(s) in {path}; nothing was sent:\n" + "\n".join(problems)
        )
    return items


def _broker_url(args: argparse.Namespace) -> str:
    if args.broker_url:
        return str(args.broker_url)
    namespace, sep, name = str(args.broker).partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise _UsageError(f"--broker {args.broker!r}: expected NAMESPACE/NAME")
    return f"http://{args.http_host}:{args.http_port}/{namespace}/{name}"


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: bytes,
    retries: int,
) -> str | None:
    """POST with retries on 408/409/429/5xx and connection errors; None when accepted."""
    problem = ""
    for attempt in range(retries + 1):
        delay = min(0.2 * 2**attempt, 5.0)
        try:
            async with session.post(url, headers=headers, data=body) as response:
                if 200 <= response.status < 300:
                    return None
                text = (await response.text()).strip()
                problem = f"HTTP {response.status}" + (f": {text}" if text else "")
                if response.status not in _RETRYABLE and response.status < 500:
                    return problem
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, float(retry_after))
        except (aiohttp.ClientError, TimeoutError) as error:
            problem = f"cannot reach {url}: {error or type(error).__name__}"
        if attempt < retries:
            await asyncio.sleep(delay)
    return problem


async def _send_http(
    url: str,
    items: list[_Item],
    args: argparse.Namespace,
    advance: Callable[[int], None],
) -> list[tuple[int, str]]:
    requests: list[tuple[list[_Item], dict[str, str], bytes]] = []
    problems: list[tuple[int, str]] = []
    if args.mode == "batch":
        for start in range(0, len(items), args.batch_size):
            chunk = items[start : start + args.batch_size]
            headers, body = to_http_batch([item.event for item in chunk])
            requests.append((chunk, headers, body))
    else:
        encode = to_http_binary if args.mode == "binary" else to_http_structured
        for item in items:
            try:
                headers, body = encode(item.event)
            except InvalidEventError as error:
                problems.append((1, f"{item.label}: cannot encode: {error}"))
                continue
            requests.append(([item], headers, body))
    limit = asyncio.Semaphore(args.concurrency)
    timeout = aiohttp.ClientTimeout(total=args.timeout_s)

    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(chunk: list[_Item], headers: dict[str, str], body: bytes) -> None:
            async with limit:
                problem = await _post(session, url, headers, body, args.retries)
            if problem is None:
                advance(len(chunk))
                return
            labels = chunk[0].label if len(chunk) == 1 else f"{chunk[0].label}-{chunk[-1].label}"
            problems.append((len(chunk), f"{labels}: {problem}"))

        await asyncio.gather(*(one(*request) for request in requests))
    return problems


async def _send_kafka(
    items: list[_Item], args: argparse.Namespace, advance: Callable[[int], None]
) -> list[tuple[int, str]]:
    # Imported here: only Kafka sends need the Kafka client.
    from knray.broker.kafka_topic import append_events  # noqa: PLC0415

    failures = await append_events(
        args.kafka_bootstrap,
        args.topic,
        [item.event for item in items],
        structured=args.mode == "structured",
        on_appended=advance,
    )
    return [
        (1, f"{items[index].label}: not appended: {error}") for index, error in sorted(failures)
    ]


def _send(args: argparse.Namespace) -> int:
    # soft_wrap: messages keep their lines (paths and line numbers stay greppable).
    console = Console(stderr=True, soft_wrap=True)
    try:
        if args.kafka_bootstrap or args.topic:
            if not (args.kafka_bootstrap and args.topic):
                raise _UsageError("--kafka-bootstrap and --topic go together")
            if args.broker_url or args.broker:
                raise _UsageError("send to a Broker or to a Kafka topic, not both")
            if args.mode == "batch":
                raise _UsageError("--mode batch is for HTTP; Kafka records hold one event each")
            destination = f"Kafka topic {args.topic} at {args.kafka_bootstrap}"
        else:
            if not (args.broker_url or args.broker):
                raise _UsageError(
                    "give --broker NAMESPACE/NAME, --broker-url URL, or --kafka-bootstrap"
                )
            destination = _broker_url(args)
        if args.file:
            event_options = (args.type, args.id, args.subject, args.data, args.data_file)
            if any(option is not None for option in event_options) or args.extension:
                raise _UsageError("--file holds whole events: no --type/--data/... options with it")
            items = _events_from_file(args.file)
        else:
            items = [_Item("event", _event_from_options(args))]
    except _UsageError as error:
        console.print(f"[red]error[/]: {error}", highlight=False)
        return 2

    progress = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not args.file or not console.is_terminal,
    )
    with progress:
        task = progress.add_task("send", total=len(items))

        def advance(n: int) -> None:
            progress.advance(task, n)

        if args.kafka_bootstrap:
            problems = asyncio.run(_send_kafka(items, args, advance))
        else:
            problems = asyncio.run(_send_http(destination, items, args, advance))
    sent = len(items) - sum(count for count, _ in problems)
    if problems:
        for _, problem in problems[:_MAX_SHOWN_FAILURES]:
            console.print(f"[red]not accepted[/]: {problem}", highlight=False)
        if len(problems) > _MAX_SHOWN_FAILURES:
            console.print(f"... and {len(problems) - _MAX_SHOWN_FAILURES} more", highlight=False)
        console.print(f"sent {sent} of {len(items)} events to {destination}", highlight=False)
        return 1
    noun = "event" if len(items) == 1 else "events"
    console.print(f"sent {len(items)} {noun} to {destination}", highlight=False)
    return 0


def add_send_command(commands: Any) -> None:
    """Register ``knray send`` on the CLI's subcommand parser."""
    send = commands.add_parser(
        "send",
        help="send CloudEvents to a Broker's HTTP ingress or to a Kafka topic",
        description=(
            "Send one event built from options, or a file of events (one structured-mode "
            "JSON CloudEvent per line), to a Broker's ingress or straight to a Kafka topic."
        ),
    )
    where = send.add_argument_group("destination")
    where.add_argument("--broker-url", metavar="URL", help="the Broker's ingress address")
    where.add_argument(
        "--broker",
        metavar="NAMESPACE/NAME",
        help="a Broker of `knray run` at http://HTTP_HOST:HTTP_PORT/NAMESPACE/NAME",
    )
    where.add_argument("--http-host", default=DEFAULT_HTTP_HOST, help="with --broker")
    where.add_argument(
        "--http-port", type=int, default=DEFAULT_HTTP_PORT, help="with --broker (default 8000)"
    )
    where.add_argument("--kafka-bootstrap", metavar="HOST:PORT", help="send to Kafka instead")
    where.add_argument("--topic", help="the Kafka topic (with --kafka-bootstrap)")
    event = send.add_argument_group("one event")
    event.add_argument("--type", help="the event's type (required without --file)")
    event.add_argument("--source", help=f"the event's source (default {_DEFAULT_SOURCE})")
    event.add_argument("--id", help="the event's id (default: a new UUID)")
    event.add_argument("--subject", help="the event's subject")
    event.add_argument("--data", help="the event's data, as text (JSON gets application/json)")
    event.add_argument("--data-file", metavar="PATH", help="the event's data, read from a file")
    event.add_argument("--content-type", help="datacontenttype of --data or --data-file")
    event.add_argument(
        "--extension",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extension attribute (repeatable)",
    )
    many = send.add_argument_group("a file of events")
    many.add_argument(
        "--file", metavar="PATH", help="JSON lines: one structured-mode CloudEvent per line"
    )
    how = send.add_argument_group("sending")
    how.add_argument(
        "--mode",
        choices=("binary", "structured", "batch"),
        default="binary",
        help="CloudEvents content mode (default binary; batch: HTTP only)",
    )
    how.add_argument("--batch-size", type=int, default=100, help="events per batch request")
    how.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    how.add_argument(
        "--retries", type=int, default=5, help="retries of a 408/409/429/5xx or unreachable"
    )
    how.add_argument("--timeout-s", type=float, default=30.0, help="per request")
    send.set_defaults(handler=_send)

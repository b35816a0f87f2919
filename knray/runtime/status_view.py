"""The live status of a running system as rich tables (plain dicts in, renderables out)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table

from knray.broker.stats import ROUTE_COUNTERS

__all__ = ["StatusDisplay", "render_status"]


def _table(title: str, columns: tuple[str, ...], rows: Mapping[str, Mapping[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("name", no_wrap=True)
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for name, values in sorted(rows.items()):
        table.add_row(name, *(str(values.get(column, "")) for column in columns))
    return table


def render_status(status: Mapping[str, Any]) -> Group:
    """Tables of sources, triggers and services from :meth:`Runtime.status` output."""
    parts: list[Table] = []
    sources = status.get("sources") or {}
    if sources:
        parts.append(
            _table("sources", ("consumed", "finished", "in_flight", "lag", "commits"), sources)
        )
    triggers = status.get("triggers") or {}
    if triggers:
        parts.append(_table("triggers", ROUTE_COUNTERS, triggers))
    services = status.get("services") or {}
    if services:
        parts.append(_table("services", ("replicas", "target", "status"), services))
    brokers = status.get("brokers") or {}
    if brokers:
        parts.append(_table("brokers", _BROKER_COLUMNS, _broker_rows(brokers)))
    return Group(*parts)


_BROKER_COLUMNS = ("class", "address", "accepted", "rejected", "busy", "queued")


def _broker_rows(brokers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Ingress responses summed by meaning: 202 accepted, 4xx rejected, 503 busy."""
    rows: dict[str, dict[str, Any]] = {}
    for key, entry in brokers.items():
        responses: Mapping[str, int] = entry.get("responses") or {}
        rows[key] = {
            "class": entry.get("class", ""),
            "address": entry.get("address") or "(no ingress)",
            "accepted": responses.get("202", 0),
            "rejected": sum(n for code, n in responses.items() if code.startswith("4")),
            "busy": responses.get("503", 0),
            "queued": entry.get("queued", ""),
        }
    return rows


class StatusDisplay:
    """A live-updating status in a terminal; a periodic printout when output is a file or pipe.

    Use as a context manager and call :meth:`refresh` often; ``render`` builds the view.
    """

    def __init__(
        self,
        console: Console,
        render: Callable[[], RenderableType],
        *,
        print_interval_s: float = 10.0,
    ) -> None:
        self._console = console
        self._render = render
        self._print_interval_s = print_interval_s
        self._live: Live | None = None
        self._last_print = 0.0

    def __enter__(self) -> StatusDisplay:
        if self._console.is_terminal:
            self._live = Live(self._render(), console=self._console, refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def refresh(self) -> None:
        """Redraw (terminal) or print when the interval has passed (file or pipe)."""
        if self._live is not None:
            self._live.update(self._render())
        elif time.monotonic() - self._last_print >= self._print_interval_s:
            self._last_print = time.monotonic()
            self._console.print(self._render())

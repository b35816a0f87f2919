"""``knray status``: the counters of a running knray, read from its Ray actors."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

__all__ = ["add_status_command"]


def _status(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    from knray.cli.run import use_loopback_ray  # noqa: PLC0415

    if not args.address:
        use_loopback_ray()
    from knray.runtime.attach import attach, cluster_status  # noqa: PLC0415 - loads Ray

    try:
        attach(args.address)
    except (ConnectionError, RuntimeError) as error:
        where = args.address or "this machine"
        console.print(f"[red]error[/]: no Ray cluster at {where}: {error}", highlight=False)
        return 1
    status = cluster_status()
    if not any(status.values()):
        console.print("nothing of knray runs on this Ray cluster (start it with `knray run`)")
        return 1
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    from knray.runtime.status_view import render_status  # noqa: PLC0415

    Console().print(render_status(status))
    return 0


def add_status_command(commands: Any) -> None:
    """Register ``knray status`` on the CLI's subcommand parser."""
    status = commands.add_parser(
        "status",
        help="show the counters of a running knray and each Broker's ingress address",
        description="Attach to the Ray cluster knray runs on and print its live counters.",
    )
    status.add_argument(
        "--address", help="Ray cluster address (default: the Ray cluster of this machine)"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    status.set_defaults(handler=_status)

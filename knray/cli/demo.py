"""``knray demo``: the live-chat AI scenario on an embedded Kafka and a local Ray."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from knray.cli.run import use_loopback_ray

__all__ = ["add_demo_command"]


def _demo(args: argparse.Namespace) -> int:
    use_loopback_ray()
    from knray.demo.run import DemoOptions, run_demo, summary_table  # noqa: PLC0415

    console = Console(stderr=False)
    if not args.config.exists():
        console.print(f"[red]error[/]: {args.config} not found (run from the knray checkout)")
        return 1
    options = DemoOptions(
        config=args.config,
        steady_events=args.steady_events,
        steady_rate_per_s=args.rate,
        burst_events=args.burst_events,
    )
    summary = run_demo(options, console)
    console.print(summary_table(summary))
    peaks = ", ".join(
        f"{k}: peak {v}, end {summary.final_replicas.get(k, 0)}"
        for k, v in sorted(summary.peak_replicas.items())
    )
    console.print(f"replicas: {peaks}")
    console.print(
        f"produced {summary.produced}, finished at the source {summary.finished}, "
        f"lost {summary.lost}, duplicates {summary.duplicates}"
    )
    return 0 if summary.lost == 0 and summary.produced > 0 else 1


def add_demo_command(commands: Any) -> None:
    """Register ``knray demo``."""
    demo = commands.add_parser(
        "demo",
        help="run the live-chat AI scenario on an embedded Kafka and a local Ray",
        description=(
            "Start an embedded Kafka-protocol broker and a local Ray, run configs/live-chat, "
            "produce synthetic chat traffic with a burst, show events flowing and replicas "
            "scaling, and print a summary. Exits 0 when no event was lost."
        ),
    )
    demo.add_argument(
        "--config",
        type=Path,
        default=Path("configs/live-chat"),
        help="the scenario's manifests (default: configs/live-chat)",
    )
    demo.add_argument("--steady-events", type=int, default=1500)
    demo.add_argument("--rate", type=float, default=150.0, help="steady events per second")
    demo.add_argument("--burst-events", type=int, default=2500)
    demo.set_defaults(handler=_demo)

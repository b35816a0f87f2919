"""``knray run``: run manifests on Ray until interrupted, with a live status."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from knray.broker.http_ingress import DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, DEFAULT_MAX_BODY_BYTES
from knray.broker.kafka_class import kafka_broker_config_warnings, kafka_broker_configs
from knray.errors import ManifestError, ManifestWarning
from knray.manifests import KafkaSource, Resource, parse_manifests

__all__ = ["add_run_command", "load_for_run", "override_bootstrap", "use_loopback_ray"]


def load_for_run(paths: list[str], console: Console) -> list[Resource]:
    """Load every path; print warnings; raise ManifestError on any bad field."""
    resources: list[Resource] = []
    for path in paths:
        loaded = parse_manifests(Path(path))
        for problem in loaded.warnings:
            console.print(f"[yellow]warning[/]: {problem}", highlight=False)
        resources.extend(loaded.resources)
    # Keys of a Kafka Broker's ConfigMap that knray does not read (a check across files).
    for problem in kafka_broker_config_warnings(resources):
        console.print(f"[yellow]warning[/]: {problem}", highlight=False)
    return resources


def override_bootstrap(resources: list[Resource], bootstrap: str | None) -> list[Resource]:
    """Point every KafkaSource at ``bootstrap`` (the embedded or test broker); Kafka-class
    Brokers get it from ``Runtime(bootstrap_servers=...)``."""
    if not bootstrap:
        return resources
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    result: list[Resource] = []
    for resource in resources:
        if isinstance(resource, KafkaSource):
            spec = resource.spec.model_copy(update={"bootstrap_servers": servers})
            result.append(resource.model_copy(update={"spec": spec}))
        else:
            result.append(resource)
    return result


class _StopFlag:
    """Set by SIGINT/SIGTERM; the main loop drains and exits 0."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""

    def install(self) -> None:
        # Installed after ray.init(), which replaces the SIGTERM handler of the process.
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self.event.set()


def use_loopback_ray() -> None:
    """Make a local Ray bind to 127.0.0.1 rather than the machine's network address.

    Ray reads this setting when it is imported, so call this before importing knray.runtime.
    Only for a local Ray: a driver joining a real cluster must advertise a routable address.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")


# `ray job stop` sends SIGTERM, then SIGKILL this many seconds later (Ray's default is 3).
JOB_STOP_WAIT_ENV = "RAY_JOB_STOP_WAIT_TIME_S"
RECOMMENDED_JOB_STOP_WAIT_S = 30


def _warn_short_stop_wait(console: Console) -> None:
    # The supervisor's environment (the job's runtime_env env_vars, or the cluster's) is the
    # entrypoint's too, so the value that rules `ray job stop` is visible here.
    try:
        wait_s = int(os.environ.get(JOB_STOP_WAIT_ENV, "3"))
    except ValueError:
        return
    if wait_s < RECOMMENDED_JOB_STOP_WAIT_S:
        console.print(
            f"[yellow]warning[/]: `ray job stop` kills this job {wait_s} s after SIGTERM, "
            "which may not be enough to drain in-flight events and commit their offsets; "
            f"submit with --runtime-env-json "
            f'\'{{"env_vars": {{"{JOB_STOP_WAIT_ENV}": "60"}}}}\'',
            highlight=False,
        )


def _in_ray_job() -> bool:
    # Ray's job supervisor sets this in the entrypoint's environment (knray.runtime.in_ray_job
    # says the same, but importing it would import Ray before use_loopback_ray() could act).
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ


def _run(args: argparse.Namespace) -> int:
    in_job = _in_ray_job()
    if not args.address and not in_job:
        use_loopback_ray()
    from knray.runtime import Runtime, connect  # noqa: PLC0415 - Ray loads only for run

    http_port = None if args.http_port < 0 else args.http_port

    console = Console(stderr=True)
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore", ManifestWarning)
    try:
        resources = override_bootstrap(load_for_run(args.files, console), args.bootstrap_servers)
        from knray.runtime.plan import build_plan  # noqa: PLC0415

        build_plan(resources)
        kafka_broker_configs(resources, args.bootstrap_servers)
    except ManifestError as error:
        for problem in error.problems:
            console.print(f"[red]error[/]: {problem}", highlight=False)
        return 1
    if in_job:
        console.print("inside a Ray job: attaching to the job's cluster")
        _warn_short_stop_wait(console)
    else:
        console.print(
            "starting Ray" if not args.address else f"connecting to Ray at {args.address}"
        )
    connect(args.address)
    stop = _StopFlag()
    stop.install()
    runtime = Runtime(
        dispatchers_per_broker=args.dispatchers,
        bootstrap_servers=args.bootstrap_servers,
        http_host=args.http_host,
        http_port=http_port,
        max_body_bytes=args.max_body_bytes,
    )
    try:
        runtime.apply(resources)
    except Exception as error:
        console.print(f"[red]error[/]: {error}", highlight=False)
        runtime.shutdown(drain=False)
        return 1
    for key, address in runtime.ingress_addresses.items():
        console.print(f"Broker {key} ingress: {address}", highlight=False)
    console.print("[green]running[/]; Ctrl-C stops (in-flight events are drained first)")
    _watch(runtime, stop, console, args)
    console.print(f"stopping ({stop.signal_name or 'done'}): draining in-flight events")
    final = runtime.shutdown(drain=True)
    from knray.runtime.status_view import render_status  # noqa: PLC0415

    console.print(render_status(final))
    return 0


def _fingerprint(paths: list[str]) -> tuple[tuple[str, int, int], ...]:
    """(file, mtime, size) of every manifest file, to notice edits while running."""
    files: list[Path] = []
    for path in map(Path, paths):
        files.extend(sorted(p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"}))
        if path.is_file():
            files.append(path)
    return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.exists())


def _watch(runtime: Any, stop: _StopFlag, console: Console, args: argparse.Namespace) -> None:
    """Refresh the status until stopped; re-apply the manifests when a file changes."""
    from knray.runtime.status_view import StatusDisplay, render_status  # noqa: PLC0415

    def view() -> Any:
        try:
            return render_status(runtime.status())
        except Exception as error:  # a status read failing must not stop the system
            return f"status unavailable: {error}"

    seen = _fingerprint(args.files)
    display = None if args.no_status else StatusDisplay(console, view)
    with display or contextlib.nullcontext():
        while not stop.event.wait(args.refresh_s):
            for name in runtime.heal():
                console.print(f"[yellow]replaced dead actor[/] {name}")
            current = _fingerprint(args.files)
            if current != seen:
                seen = current
                _reapply(runtime, console, args)
            if display is not None:
                display.refresh()


def _reapply(runtime: Any, console: Console, args: argparse.Namespace) -> None:
    # The running system keeps its old manifests when the new ones are invalid.
    try:
        resources = override_bootstrap(load_for_run(args.files, console), args.bootstrap_servers)
        runtime.apply(resources)
    except ManifestError as error:
        console.print("[red]manifests changed but are invalid; still running the old ones[/]")
        for problem in error.problems:
            console.print(f"[red]error[/]: {problem}", highlight=False)
    except Exception as error:
        console.print(f"[red]applying the changed manifests failed[/]: {error}", highlight=False)
    else:
        console.print("[green]manifests changed: applied[/]")


def add_run_command(commands: Any) -> None:
    """Register ``knray run`` on the CLI's subcommand parser."""
    run = commands.add_parser(
        "run",
        help="run manifests on Ray until interrupted",
        description="Run Knative manifests on a local Ray (default) or an existing cluster.",
    )
    run.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="PATH",
        help="a YAML file or a folder of them (repeatable)",
    )
    run.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    run.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        help="override every KafkaSource's bootstrapServers",
    )
    run.add_argument(
        "--dispatchers", type=int, default=2, help="dispatcher actors per Broker (default 2)"
    )
    run.add_argument(
        "--http-host",
        default=DEFAULT_HTTP_HOST,
        help=f"address the Brokers' HTTP ingress binds (default {DEFAULT_HTTP_HOST})",
    )
    run.add_argument(
        "--http-port",
        type=int,
        default=DEFAULT_HTTP_PORT,
        help=f"port of the Brokers' HTTP ingress (default {DEFAULT_HTTP_PORT}; 0: a free "
        "port; -1: no ingress)",
    )
    run.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest request the ingress accepts, 413 above (default 1 MiB)",
    )
    run.add_argument("--refresh-s", type=float, default=1.0, help="status refresh period")
    run.add_argument("--no-status", action="store_true", help="no live status table")
    # Edits to the manifest files are applied while running (the reconciler diffs them).
    run.set_defaults(handler=_run)

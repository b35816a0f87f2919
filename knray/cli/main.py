"""``knray``: parse arguments, then call the library."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from knray.broker.kafka_class import kafka_broker_config_warnings
from knray.cli.demo import add_demo_command
from knray.cli.kuberay import add_kuberay_command
from knray.cli.run import add_run_command
from knray.cli.send import add_send_command
from knray.cli.status import add_status_command
from knray.errors import FieldProblem, ManifestError
from knray.filters import compile_trigger
from knray.manifests import Trigger, parse_manifests
from knray.manifests.references import check_references

__all__ = ["main"]


def _validate(args: argparse.Namespace) -> int:
    failed = False
    for source in args.files:
        try:
            loaded = parse_manifests(Path(source))
            for resource in loaded.resources:
                if isinstance(resource, Trigger):
                    compile_trigger(resource)
        except ManifestError as error:
            failed = True
            for problem in error.problems:
                print(f"error: {problem}", file=sys.stderr)
            continue
        found: list[FieldProblem] = [
            *loaded.warnings,
            *check_references(loaded.resources),
            *kafka_broker_config_warnings(loaded.resources),
        ]
        for problem in found:
            print(f"warning: {problem}", file=sys.stderr)
        if args.strict and found:
            failed = True
        counts = Counter(type(r).KIND for r in loaded.resources)
        summary = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))
        print(f"{source}: {len(loaded.resources)} resources valid ({summary})")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``knray`` command."""
    parser = argparse.ArgumentParser(
        prog="knray", description="Run Knative Eventing manifests on Ray."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = commands.add_parser(
        "validate",
        help="check manifests: exit 0 when valid, 1 when not (messages on stderr)",
        description="Load Knative manifests and report every bad field with its path.",
    )
    validate.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="PATH",
        help="a YAML file or a folder of them (repeatable)",
    )
    validate.add_argument(
        "--strict", action="store_true", help="treat warnings (unimplemented annotations) as errors"
    )
    validate.set_defaults(handler=_validate)
    add_run_command(commands)
    add_demo_command(commands)
    add_send_command(commands)
    add_status_command(commands)
    add_kuberay_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``knray`` console script."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""``knray kuberay render``: KubeRay manifests (RayService, RayJob, RayCluster) for knray
manifests, written to stdout or a file."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from knray.deploy import (
    UNBOUNDED_MAX_SCALE,
    ManifestFile,
    RenderKind,
    RenderOptions,
    dump_documents,
    render,
)
from knray.errors import FieldProblem, ManifestError
from knray.manifests import Resource, parse_manifests
from knray.manifests.references import check_references

__all__ = ["add_kuberay_command", "manifest_files"]

_YAML_SUFFIXES = (".yaml", ".yml")
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def manifest_files(paths: Sequence[str]) -> list[ManifestFile]:
    """The YAML files of ``paths`` (files or folders, as ``knray run -f`` reads them), keyed
    for a ConfigMap: the path inside its folder with ``/`` written as ``.``."""
    files: list[ManifestFile] = []
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted(
                p
                for p in given.rglob("*")
                if p.suffix in _YAML_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(given).parts)
            )
            for path in found:
                key = ".".join(path.relative_to(given).parts)
                files.append(ManifestFile(key, path.read_text(encoding="utf-8")))
        elif given.is_file():
            files.append(ManifestFile(given.name, given.read_text(encoding="utf-8")))
    return files


def _default_name(paths: Sequence[str]) -> str:
    name = _NOT_NAME.sub("-", Path(paths[0]).resolve().name.lower()).strip("-")
    return name or "knray"


def _default_namespace(resources: Sequence[Resource]) -> str:
    namespaces = {resource.namespace for resource in resources}
    return namespaces.pop() if len(namespaces) == 1 else "default"


def _ray_version() -> str:
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return RenderOptions.ray_version


def _render(args: argparse.Namespace) -> int:
    resources: list[Resource] = []
    problems: list[FieldProblem] = []
    for path in args.files:
        try:
            loaded = parse_manifests(Path(path))
        except ManifestError as error:
            problems.extend(error.problems)
            continue
        resources.extend(loaded.resources)
        for warning in loaded.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    if not problems:
        # A warning for `knray validate`, an error here: knray runs only what is defined.
        problems.extend(check_references(resources))
    if problems:
        return _fail(problems)
    options = RenderOptions(
        kind=RenderKind(args.kind),
        name=args.name or _default_name(args.files),
        namespace=args.namespace or _default_namespace(resources),
        image=args.image,
        ray_version=args.ray_version or _ray_version(),
        head_cpu=args.head_cpu,
        head_memory=args.head_memory,
        worker_cpu=args.worker_cpu,
        worker_memory=args.worker_memory,
        worker_gpu=args.worker_gpu,
        unbounded_max_scale=args.unbounded_max_scale,
        bootstrap_servers=args.bootstrap_servers,
        dispatchers_per_broker=args.dispatchers,
        job_stop_wait_s=args.job_stop_wait_s,
    )
    try:
        documents = render(resources, manifest_files(args.files), options)
    except ManifestError as error:
        return _fail(list(error.problems))
    header = (
        f"Rendered by: knray kuberay render {shlex.join(_command(args))}\n"
        "Do not edit: change the manifests or the options and render again."
    )
    text = dump_documents(documents, header)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def _command(args: argparse.Namespace) -> list[str]:
    """The options that made this output (defaults left out), to render it again."""
    command: list[str] = []
    for path in args.files:
        command += ["-f", path]
    command += ["--kind", args.kind]
    parser: argparse.ArgumentParser = args.parser
    for action in parser._actions:  # argparse has no public list of a parser's options
        if action.dest in {"files", "kind", "output", "help"} or not action.option_strings:
            continue
        value = getattr(args, action.dest)
        if value is not None and value != action.default:
            command += [action.option_strings[-1], str(value)]
    return command


def _fail(problems: Sequence[FieldProblem]) -> int:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1


def add_kuberay_command(commands: Any) -> None:
    """Register ``knray kuberay render`` on the CLI's subcommand parser."""
    kuberay = commands.add_parser(
        "kuberay",
        help="KubeRay manifests for knray manifests",
        description="Render KubeRay (ray.io/v1) manifests that run knray manifests.",
    )
    actions = kuberay.add_subparsers(dest="kuberay_command", required=True, metavar="ACTION")
    render_parser = actions.add_parser(
        "render",
        help="write a RayService, RayJob or RayCluster (and its ConfigMap) as YAML",
        description=(
            "Write ray.io/v1 manifests for knray manifests: a head group and one autoscaled "
            "worker group sized from the Services' min/max-scale and per-replica resources, "
            "the manifests in a ConfigMap (RayJob, RayCluster) or in serveConfigV2 "
            "(RayService), and Kafka credentials as Secret references."
        ),
    )
    render_parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="PATH",
        help="a YAML file or a folder of them (repeatable)",
    )
    render_parser.add_argument("--kind", required=True, choices=[kind.value for kind in RenderKind])
    render_parser.add_argument(
        "--image", default="knray:latest", help="image with Ray, knray and the handler code"
    )
    render_parser.add_argument(
        "--namespace", help="Kubernetes namespace (default: the manifests' one, else default)"
    )
    render_parser.add_argument("--name", help="resource name (default: the first PATH's name)")
    render_parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT,...",
        help="Kafka address for every KafkaSource (default: the manifests' bootstrapServers)",
    )
    render_parser.add_argument(
        "--ray-version", help="spec.rayVersion (default: the installed Ray's version)"
    )
    render_parser.add_argument("--head-cpu", default="1", help="head pod CPU (default 1)")
    render_parser.add_argument("--head-memory", default="4Gi", help="head pod memory (4Gi)")
    render_parser.add_argument("--worker-cpu", default="2", help="worker pod CPU (default 2)")
    render_parser.add_argument("--worker-memory", default="4Gi", help="worker pod memory (4Gi)")
    render_parser.add_argument(
        "--worker-gpu", type=int, default=0, help="nvidia.com/gpu per worker pod (default 0)"
    )
    render_parser.add_argument(
        "--unbounded-max-scale",
        type=int,
        default=UNBOUNDED_MAX_SCALE,
        help=f"replicas counted for a Service without max-scale (default {UNBOUNDED_MAX_SCALE})",
    )
    render_parser.add_argument(
        "--dispatchers", type=int, default=2, help="dispatcher actors per Broker (default 2)"
    )
    render_parser.add_argument(
        "--job-stop-wait-s",
        type=int,
        default=60,
        help="RayJob: seconds between SIGTERM and SIGKILL when the job stops (default 60)",
    )
    render_parser.add_argument("-o", "--output", metavar="FILE", help="write here, not stdout")
    render_parser.set_defaults(handler=_render, parser=render_parser)

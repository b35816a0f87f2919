"""Load Knative manifests from YAML: files, folders or text, one or many documents."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError

from knray.errors import FieldProblem, ManifestError, ManifestWarning
from knray.manifests.annotations import check_annotations
from knray.manifests.base import Resource
from knray.manifests.broker import Broker
from knray.manifests.config_map import ConfigMap
from knray.manifests.kafka_source import KafkaSource, KafkaSourceV1Alpha1
from knray.manifests.nats_jetstream_source import NatsJetStreamSource
from knray.manifests.ping_source import PingSource
from knray.manifests.rabbitmq_source import RabbitmqSource
from knray.manifests.redis_stream_source import RedisStreamSource
from knray.manifests.rocketmq_source import RocketMQSource
from knray.manifests.service import KnativeService
from knray.manifests.trigger import Trigger

__all__ = [
    "RESOURCE_TYPES",
    "SOURCE_TYPES",
    "ManifestSet",
    "load_manifests",
    "parse_manifests",
    "parse_resource",
]

# Every source kind: each has ``spec.sink`` and ``spec.ceOverrides``, most ``spec.delivery``.
SOURCE_TYPES: Final[tuple[type[Resource], ...]] = (
    KafkaSource,
    KafkaSourceV1Alpha1,
    PingSource,
    RabbitmqSource,
    RedisStreamSource,
    NatsJetStreamSource,
    RocketMQSource,
)
RESOURCE_TYPES: Final[tuple[type[Resource], ...]] = (
    Broker,
    Trigger,
    *SOURCE_TYPES,
    KnativeService,
    ConfigMap,
)
_BY_API: Final = {(api, cls.KIND): cls for cls in RESOURCE_TYPES for api in cls.API_VERSIONS}
_YAML_SUFFIXES: Final = (".yaml", ".yml")
_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ManifestSet:
    """Resources loaded from manifests, with the warnings found while loading them."""

    resources: tuple[Resource, ...]
    warnings: tuple[FieldProblem, ...]

    def of_type(self, kind: type[Resource]) -> list[Resource]:
        return [r for r in self.resources if isinstance(r, kind)]


class _StringKeysLoader(yaml.SafeLoader):
    """Safe YAML, except timestamps stay strings: Kubernetes fields are typed by schema."""


_StringKeysLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def format_location(location: Sequence[int | str]) -> str:
    """Render a pydantic location as a field path: ``spec.filters[1].exact.type``."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            path += " (key)"
        elif _PLAIN_KEY.fullmatch(part):
            path += f".{part}" if path else part
        else:
            path += f"[{part}]"
    return path


def _problems_from_validation(error: ValidationError, location: str) -> list[FieldProblem]:
    problems = []
    for detail in error.errors():
        kind = detail["type"]
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required field is missing"
        else:
            message = str(detail["msg"]).removeprefix("Value error, ")
        problems.append(FieldProblem(format_location(detail["loc"]), message, location))
    return problems


def _documents(source: str | Path) -> Iterable[tuple[str, str]]:
    """(name, yaml text) for every file of ``source``, or for ``source`` as YAML text."""
    if isinstance(source, Path) or (
        "\n" not in source and ":" not in source.split("/")[-1] and source.strip()
    ):
        path = Path(source)
        if path.is_dir():
            # Hidden entries are skipped: a mounted Kubernetes ConfigMap holds each file twice,
            # once under its timestamped `..<date>` folder and once as a symlink beside it.
            files = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in _YAML_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not files:
                raise ManifestError([FieldProblem("", f"no .yaml or .yml files in {path}")])
            for file in files:
                yield str(file), file.read_text(encoding="utf-8")
            return
        if not path.is_file():
            raise ManifestError([FieldProblem("", f"no such file or folder: {path}")])
        yield str(path), path.read_text(encoding="utf-8")
        return
    yield "<text>", source


def parse_manifests(source: str | Path) -> ManifestSet:
    """Load every resource of a file, a folder (recursively) or YAML text.

    Raises ManifestError listing every bad field of every document.
    """
    resources: list[Resource] = []
    problems: list[FieldProblem] = []
    found_warnings: list[FieldProblem] = []
    seen: dict[str, str] = {}
    for name, text in _documents(source):
        try:
            documents = list(yaml.load_all(text, Loader=_StringKeysLoader))
        except yaml.YAMLError as error:
            problems.append(FieldProblem("", f"invalid YAML: {error}", name))
            continue
        for index, document in enumerate(documents, start=1):
            if document is None:
                continue
            location = f"{name}#{index}"
            resource = _load_document(document, location, problems, found_warnings)
            if resource is None:
                continue
            if resource.key in seen:
                problems.append(
                    FieldProblem(
                        "metadata.name",
                        f"{resource.key} is also defined at {seen[resource.key]}",
                        location,
                    )
                )
                continue
            seen[resource.key] = location
            resources.append(resource)
    if problems:
        raise ManifestError(problems)
    return ManifestSet(tuple(resources), tuple(found_warnings))


def _load_document(
    document: Any, location: str, problems: list[FieldProblem], found: list[FieldProblem]
) -> Resource | None:
    if not isinstance(document, Mapping):
        problems.append(FieldProblem("", "a manifest must be a mapping", location))
        return None
    api_version, kind = document.get("apiVersion"), document.get("kind")
    metadata = document.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        location = f"{location} {kind}/{metadata['name']}".strip()
    model = _BY_API.get((api_version, kind))  # type: ignore[arg-type]
    if model is None:
        if not isinstance(api_version, str) or not isinstance(kind, str):
            problems.append(FieldProblem("", "apiVersion and kind are required", location))
            return None
        known = sorted({f"{cls.KIND} ({', '.join(cls.API_VERSIONS)})" for cls in RESOURCE_TYPES})
        problems.append(
            FieldProblem(
                "kind",
                f"unknown resource {api_version} {kind}; knray reads {'; '.join(known)}",
                location,
            )
        )
        return None
    report = check_annotations(model.KIND, document)
    problems.extend(FieldProblem(path, message, location) for path, message in report.errors)
    found.extend(FieldProblem(path, message, location) for path, message in report.warnings)
    try:
        resource = model.model_validate(document)
    except ValidationError as error:
        problems.extend(_problems_from_validation(error, location))
        return None
    return resource if not report.errors else None


def load_manifests(source: str | Path) -> list[Resource]:
    """Load resources from a file, a folder or YAML text; warnings go to ``warnings.warn``.

    Raises :class:`knray.errors.ManifestError` (a ``ValueError``) naming every bad field path.
    """
    loaded = parse_manifests(source)
    for problem in loaded.warnings:
        warnings.warn(ManifestWarning(problem), stacklevel=2)
    return list(loaded.resources)


def parse_resource(document: Mapping[str, Any]) -> Resource:
    """One resource from a manifest already parsed into a dict (as ``yaml.safe_load`` gives).

    Raises ManifestError naming every bad field; warnings go to ``warnings.warn``.
    """
    problems: list[FieldProblem] = []
    found: list[FieldProblem] = []
    resource = _load_document(document, "", problems, found)
    if problems or resource is None:
        raise ManifestError(problems)
    for problem in found:
        warnings.warn(ManifestWarning(problem), stacklevel=2)
    return resource

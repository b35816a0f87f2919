"""Source specs shared by every source kind: sink, CloudEvent overrides, secret references."""

from __future__ import annotations

import re
from typing import Final

from pydantic import Field, field_validator

from knray.events.event import CONTEXT_ATTRIBUTES
from knray.manifests.base import Destination, ManifestModel, NonEmptyStr

__all__ = ["CloudEventOverrides", "SecretKeySelector", "SecretValueFromSource", "SourceSpec"]

# CloudEvents attribute naming (spec v1.0.2): lower-case letters and digits.
_EXTENSION_NAME: Final = re.compile(r"[a-z0-9]+")
# Context attributes a source sets itself; ceOverrides may only add extensions.
_RESERVED: Final = CONTEXT_ATTRIBUTES | {"data"}


class CloudEventOverrides(ManifestModel):
    """``ceOverrides``: extension attributes added to every event the source emits."""

    extensions: dict[str, str] = Field(default_factory=dict)

    @field_validator("extensions")
    @classmethod
    def _names(cls, extensions: dict[str, str]) -> dict[str, str]:
        for name in extensions:
            if not _EXTENSION_NAME.fullmatch(name):
                raise ValueError(
                    f"invalid extension name {name!r}: lower-case letters and digits only"
                )
            if name in _RESERVED:
                raise ValueError(f"{name!r} is a CloudEvents context attribute, not an extension")
        return extensions


class SourceSpec(ManifestModel):
    """The duck-typed part every Knative source has: where to send and what to add."""

    sink: Destination
    ce_overrides: CloudEventOverrides | None = None


class SecretKeySelector(ManifestModel):
    """A key of a Kubernetes Secret."""

    name: NonEmptyStr
    key: NonEmptyStr
    optional: bool | None = None


class SecretValueFromSource(ManifestModel):
    """A value read from a Secret (knray resolves it from the environment or a file)."""

    secret_key_ref: SecretKeySelector | None = None

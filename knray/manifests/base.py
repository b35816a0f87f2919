"""Shared pieces of every manifest model: strict camelCase models, metadata, references."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "AttributeName",
    "Destination",
    "KReference",
    "ManifestModel",
    "NonEmptyStr",
    "ObjectMeta",
    "Resource",
]

# Knative's rule for attribute names in trigger filters: lower-case alphanumerics starting with
# a letter (eventing pkg/apis/eventing/v1/trigger_validation.go, validAttributeName).
_FILTER_ATTRIBUTE_NAME: Final = re.compile(r"[a-z][a-z0-9]*")
# Kubernetes object names (RFC 1123 subdomain, as Knative resources use).
_K8S_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _check_attribute_name(name: str) -> str:
    if not _FILTER_ATTRIBUTE_NAME.fullmatch(name):
        raise ValueError(
            f"invalid attribute name {name!r}: must start with a lower-case letter and "
            "contain only lower-case letters and digits"
        )
    return name


def _check_non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _check_k8s_name(value: str) -> str:
    if len(value) > 253 or not _K8S_NAME.fullmatch(value):
        raise ValueError(
            f"invalid name {value!r}: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


AttributeName = Annotated[str, AfterValidator(_check_attribute_name)]
NonEmptyStr = Annotated[str, AfterValidator(_check_non_empty)]
K8sName = Annotated[str, AfterValidator(_check_k8s_name)]


class ManifestModel(BaseModel):
    """Strict model: camelCase YAML keys, snake_case Python fields, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=False,
    )


class ObjectMeta(ManifestModel):
    """The part of Kubernetes ``metadata`` knray reads; other standard keys are accepted."""

    name: K8sName
    namespace: K8sName = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    # Written by kubectl or a cluster; meaningless here but harmless in an exported manifest.
    generate_name: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    finalizers: list[str] | None = None
    owner_references: list[dict[str, Any]] | None = None
    managed_fields: list[dict[str, Any]] | None = None


class KReference(ManifestModel):
    """A reference to another resource (Knative ``KReference``)."""

    api_version: NonEmptyStr
    kind: NonEmptyStr
    name: NonEmptyStr
    namespace: str | None = None
    group: str | None = None


class Destination(ManifestModel):
    """Where events go: a resource reference, a URI, or a reference plus a relative URI."""

    ref: KReference | None = None
    uri: str | None = None
    ca_certs: str | None = Field(default=None, alias="CACerts")
    audience: str | None = None

    @model_validator(mode="after")
    def _ref_or_uri(self) -> Destination:
        # duck/v1 Destination.Validate: exactly one of ref and absolute uri, or ref + relative uri.
        if self.ref is None and not self.uri:
            raise ValueError("expected exactly one of 'ref' or 'uri'")
        if self.ref is None and self.uri and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", self.uri):
            raise ValueError(f"uri {self.uri!r} must be absolute when no 'ref' is given")
        return self


class Resource(ManifestModel):
    """A Knative resource: ``apiVersion``, ``kind``, ``metadata``, ``spec``."""

    API_VERSIONS: ClassVar[tuple[str, ...]] = ()
    KIND: ClassVar[str] = ""

    api_version: str
    kind: str
    metadata: ObjectMeta
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def annotations(self) -> dict[str, str]:
        return self.metadata.annotations

    @property
    def key(self) -> str:
        """``Kind/namespace/name``, unique within a set of manifests."""
        return f"{self.kind}/{self.namespace}/{self.name}"

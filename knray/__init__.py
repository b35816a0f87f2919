"""knray: Knative Eventing on Ray.

The public API: the event value, loading and checking manifests, compiling trigger filters,
and the exception tree. Everything else lives in the subpackages named in the docs.
"""

from knray.errors import (
    CELCompileError,
    CESQLError,
    CESQLParseError,
    InvalidEventError,
    KnrayError,
    ManifestError,
    ManifestWarning,
)
from knray.events import CloudEvent
from knray.filters import Filter, compile_trigger
from knray.manifests import load_manifests, parse_manifests

__all__ = [
    "CELCompileError",
    "CESQLError",
    "CESQLParseError",
    "CloudEvent",
    "Filter",
    "InvalidEventError",
    "KnrayError",
    "ManifestError",
    "ManifestWarning",
    "compile_trigger",
    "load_manifests",
    "parse_manifests",
]

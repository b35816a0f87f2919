"""knray: Knative Eventing on Ray.

The public API: the event value, loading and checking manifests, compiling trigger filters,
the exception tree, and ``knray.local()`` for notebooks (loaded on first use: ``import knray``
does not import Ray). Everything else lives in the subpackages named in the docs.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from knray.interactive import local

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
    "local",
    "parse_manifests",
]


def __getattr__(name: str) -> Any:
    if name == "local":
        from knray.interactive import local  # noqa: PLC0415 - Ray only when a session starts

        return local
    raise AttributeError(f"module 'knray' has no attribute {name!r}")

"""Locate the shared test data (CESQL TCK, CloudEvents conformance) that lives beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

_WHERE = {
    "cesql-tck": "the CloudEvents SQL TCK: cesql/cesql_tck/ in github.com/cloudevents/spec",
    "ce-conformance": "github.com/cloudevents/conformance (features/ and yaml/)",
    "kuberay-crds": "ray-operator/config/crd/bases/ in github.com/ray-project/kuberay (v1.7.0)",
}


def shared_dir(name: str) -> Path | None:
    """``$KNRAY_SHARED_DIR/<name>`` or ``<repo>/../shared/<name>``, or None when absent."""
    base = Path(os.environ.get("KNRAY_SHARED_DIR", REPO_ROOT.parent / "shared"))
    path = base / name
    return path if path.is_dir() else None


def require_shared_dir(name: str) -> Path:
    """The shared folder, skipping the test when it is absent (failing instead under CI)."""
    path = shared_dir(name)
    if path is not None:
        return path
    message = (
        f"shared test data {name!r} not found: set KNRAY_SHARED_DIR to a folder holding "
        f"{name}/ (get it from {_WHERE.get(name, 'the knray maintainers')})"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)

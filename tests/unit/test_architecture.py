"""The public API and the layering rules stay as documented."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import knray
import knray.errors

REPO = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_public_api_is_sorted_and_importable() -> None:
    assert knray.__all__ == sorted(knray.__all__)
    for name in knray.__all__:
        assert getattr(knray, name) is not None


def test_every_subpackage_except_runtime_and_serving_is_forbidden_ray() -> None:
    (contract,) = [c for c in _contracts() if c["name"] == "Only runtime and serving import ray"]
    guarded = set(contract["source_modules"])  # type: ignore[call-overload]
    subpackages = {
        f"knray.{info.name}"
        for info in pkgutil.iter_modules(knray.__path__)
        if info.name not in {"runtime", "serving"} and not info.name.startswith("_")
    }
    missing = subpackages - guarded
    assert not missing, f"add {sorted(missing)} to the import-linter contract"


def test_every_error_subclasses_a_builtin_and_the_root() -> None:
    builtins = (ValueError, LookupError, ArithmeticError)
    for name in knray.errors.__all__:
        cls = getattr(knray.errors, name)
        if not isinstance(cls, type) or not issubclass(cls, Exception) or issubclass(cls, Warning):
            continue
        if cls in {knray.errors.KnrayError, knray.errors.CESQLError}:
            continue
        assert issubclass(cls, knray.errors.KnrayError), name
        assert issubclass(cls, builtins), name


def test_cesql_errors_carry_the_spec_kind() -> None:
    kinds = {
        getattr(knray.errors, name).kind
        for name in knray.errors.__all__
        if name.startswith("CESQL") and name != "CESQLError"
    }
    assert kinds == {
        "parse",
        "math",
        "cast",
        "missingFunction",
        "functionEvaluation",
        "missingAttribute",
    }


def test_pure_core_imports_without_ray() -> None:
    # A fresh interpreter: other tests in this process may have imported Ray themselves.
    code = (
        "import sys, knray, knray.events, knray.cesql, knray.cel, knray.manifests, "
        "knray.filters; print(sorted(m for m in ('ray', 'aiokafka') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"

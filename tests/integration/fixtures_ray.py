"""A real local Ray for the integration tests: started once per session, stopped at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import ray
from ray import serve

from knray.runtime import Runtime


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A local Ray (never an existing cluster: RAY_ENABLE_AUTO_CONNECT=0) with Serve shut down
    at the end of the session."""
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        namespace="knray-tests",
        configure_logging=False,
        runtime_env={"env_vars": {"RAY_ENABLE_AUTO_CONNECT": "0"}},
    )
    try:
        yield
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


@pytest.fixture
def runtimes(ray_local: None) -> Iterator[list[Runtime]]:
    """Runtimes a test starts (append them): shut down without draining at its end."""
    started: list[Runtime] = []
    yield started
    for runtime in started:
        runtime.shutdown(drain=False)

"""The only place that creates Ray actors: manifests become running actors and deployments."""

from knray.runtime.plan import Plan, build_plan
from knray.runtime.runtime import Runtime, connect

__all__ = ["Plan", "Runtime", "build_plan", "connect"]

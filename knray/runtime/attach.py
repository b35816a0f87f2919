"""The status of a knray already running on a Ray cluster, read from its named actors.

Another process (``knray status``) finds the actors by name in the ``knray`` Ray namespace
(``knray.runtime.names``) and asks each for its counters; the result has the shape of
``Runtime.status()``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import ray
from ray import serve

from knray.runtime.names import INGRESS_ACTOR_NAME, RAY_NAMESPACE

__all__ = ["attach", "cluster_status"]


def attach(address: str | None) -> None:
    """Connect to the running Ray cluster at ``address`` (``auto``: the local one).

    Raises ConnectionError when no cluster answers; never starts one.
    """
    if ray.is_initialized():
        return
    ray.init(
        address=address or "auto",
        namespace=RAY_NAMESPACE,
        log_to_driver=False,
        configure_logging=False,
    )


def _add(total: dict[str, Any], counters: Mapping[str, Any]) -> None:
    for name, raw in counters.items():
        value = raw
        if isinstance(raw, Mapping):  # per-partition lag adds up to one number
            value = sum(v for v in raw.values() if isinstance(v, int | float))
        if name == "committed" or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        total[name] = total.get(name, 0) + value


def _stats(name: str) -> dict[str, Any] | None:
    try:
        handle = ray.get_actor(name, namespace=RAY_NAMESPACE)
        return dict(ray.get(handle.stats.remote(), timeout=10))
    except (ValueError, ray.exceptions.RayError):
        return None  # gone between listing and asking


def _split(name: str) -> tuple[str, str] | None:
    """``(role, key)`` of ``role:key:index`` actor names."""
    role, sep, rest = name.partition(":")
    key, sep2, _index = rest.rpartition(":")
    if not sep or not sep2:
        return None
    return role, key


def cluster_status(names: Iterable[str] | None = None) -> dict[str, Any]:
    """Counters of every source, trigger, Service and Broker ingress of the running knray."""
    if names is None:
        names = [
            actor["name"]
            for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor.get("namespace") == RAY_NAMESPACE
        ]
    sources: dict[str, dict[str, Any]] = defaultdict(dict)
    triggers: dict[str, dict[str, Any]] = defaultdict(dict)
    brokers: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        if name == INGRESS_ACTOR_NAME:
            stats = _stats(name)
            if stats is not None:
                brokers.update(stats.get("brokers", {}))
            continue
        parsed = _split(name)
        if parsed is None:
            continue
        role, key = parsed
        stats = _stats(name)
        if stats is None:
            continue
        if role == "source":
            _add(sources[key], stats)
        elif role == "broker":
            for route, counters in stats.get("routes", {}).items():
                _add(triggers[route], counters)
            brokers.setdefault(key, {"class": "", "address": ""})
        elif role == "trigger":
            _add(triggers[key], stats["dispatch"]["routes"].get(key, {}))
            _add(triggers[key], {"lag": stats["consumer"].get("lag", {})})
    return {
        "sources": dict(sources),
        "triggers": dict(triggers),
        "services": _services(),
        "brokers": brokers,
    }


def _services() -> dict[str, dict[str, Any]]:
    try:
        applications = serve.status().applications
    except Exception:  # Serve not running: no Services
        return {}
    result: dict[str, dict[str, Any]] = {}
    for name, application in applications.items():
        replicas = 0
        for deployment in application.deployments.values():
            states: dict[Any, int] = dict(deployment.replica_states)
            replicas += sum(n for s, n in states.items() if str(s).endswith("RUNNING"))
        result[name] = {
            "replicas": replicas,
            "target": "",
            "status": str(application.status).rsplit(".", 1)[-1],
        }
    return result

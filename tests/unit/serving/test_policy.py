"""The Serve policy with a fake context: metrics per replica, holding, and never raising; and
the policy pickles by value so the Serve controller never has to import knray."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import knray.serving.kpa
import knray.serving.policy
from knray.serving.policy import STATE_KEY, KnativeAutoscalingPolicy

KWARGS = {"target_per_replica": 10.0, "window_s": 6.0, "panic_window_s": 1.0}


@dataclass
class FakeContext:
    running_replicas: list[str]
    aggregated_metrics: dict[str, dict[str, float]]
    target_num_replicas: int = 1
    total_num_requests: float = 0.0
    current_time: float | None = 100.0
    policy_state: dict[str, Any] = field(default_factory=dict)

    @property
    def current_num_replicas(self) -> int:
        return len(self.running_replicas)


def test_sums_events_in_flight_over_replicas() -> None:
    policy = KnativeAutoscalingPolicy(**KWARGS)
    ctx = FakeContext(["a", "b"], {"events_in_flight": {"a": 30.0, "b": 25.0}}, 2)
    desired, state = policy(ctx)
    assert desired == 6
    assert STATE_KEY in state


def test_keeps_serves_internal_state_keys() -> None:
    policy = KnativeAutoscalingPolicy(**KWARGS)
    ctx = FakeContext(["a"], {"events_in_flight": {"a": 1.0}}, policy_state={"serve_key": 1})
    assert policy(ctx)[1]["serve_key"] == 1


def test_holds_until_every_running_replica_reported() -> None:
    policy = KnativeAutoscalingPolicy(**KWARGS)
    ctx = FakeContext(["a", "b"], {"events_in_flight": {"a": 500.0}}, 2)
    assert policy(ctx)[0] == 2


def test_requests_waiting_in_handles_are_a_floor() -> None:
    policy = KnativeAutoscalingPolicy(**KWARGS)
    ctx = FakeContext(["a"], {"events_in_flight": {"a": 0.0}}, 1, total_num_requests=25.0)
    assert policy(ctx)[0] == 3


def test_errors_hold_the_current_target() -> None:
    broken = KnativeAutoscalingPolicy(**{**KWARGS, "window_s": "bad"})
    ctx = FakeContext(["a"], {"events_in_flight": {"a": 100.0}}, 1, policy_state={"k": 1})
    assert broken(ctx) == (1, {"k": 1})
    bad_kwargs = KnativeAutoscalingPolicy(nonsense=1)
    assert bad_kwargs(ctx)[0] == 1
    assert KnativeAutoscalingPolicy(**KWARGS)(object())[0] == 1


def test_policy_and_kpa_import_only_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"ray", "knray"}
    for module in (knray.serving.policy, knray.serving.kpa):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] in allowed, f"{module.__name__} imports {name}"
                if name.startswith("knray"):
                    assert name == "knray.serving.kpa", f"{module.__name__} imports {name}"


def test_serialized_policy_loads_where_knray_cannot_be_imported() -> None:
    # The Serve controller unpickles the policy; with knray unimportable there it must still
    # load and run (an import failure in the controller wedges Serve).
    from knray.serving.deployment import _policy  # noqa: PLC0415

    serialized = _policy(KWARGS).get_serialized_policy_def()
    code = (
        "import sys, pickle\n"
        "sys.modules['knray'] = None\n"
        "policy_class = pickle.loads(sys.stdin.buffer.read())\n"
        "class Ctx:\n"
        "    running_replicas = ['a']; current_num_replicas = 1; target_num_replicas = 1\n"
        "    aggregated_metrics = {'events_in_flight': {'a': 45.0}}; total_num_requests = 0\n"
        "    current_time = 1.0; policy_state = {}\n"
        f"print(policy_class(**{KWARGS!r})(Ctx())[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        input=serialized,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "5"

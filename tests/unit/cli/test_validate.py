"""`knray validate`: exit codes and messages, through the installed console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from knray.cli.main import main

REPO = Path(__file__).resolve().parents[3]

BAD = """\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: broken
spec:
  broker: default
  colour: red
  filters:
    - cesql: "type LIKE"
    - exact:
        type: ""
    - prefix:
        Source: /chat
  subscriber:
    uri: http://127.0.0.1:8080/
"""


def _knray(*args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("knray", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "knray.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=REPO, check=False, timeout=120
    )


def test_validate_configs_exits_zero_and_warns_per_unimplemented_annotation() -> None:
    result = _knray("validate", "-f", "configs/")
    assert result.returncode == 0, result.stderr
    for annotation in (
        "networking.knative.dev/flow-controller.class",
        "autoscaling.knative.dev/class",
        "autoscaling.knative.dev/pod-buffer-size",
        "autoscaling.knative.dev/gc-time",
        "k8s.aliyun.com/retry-count",
    ):
        assert annotation in result.stderr
    assert "resources valid" in result.stdout


def test_validate_names_all_four_bad_paths_and_exits_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = _knray("validate", "-f", str(bad))
    assert result.returncode == 1
    for path in (
        "spec.colour",
        "spec.filters[0].cesql",
        "spec.filters[1].exact.type",
        "spec.filters[2].prefix.Source",
    ):
        assert path in result.stderr, path


def test_validate_strict_turns_warnings_into_failure() -> None:
    result = _knray("validate", "--strict", "-f", "configs/article")
    assert result.returncode == 1


def test_validate_requires_a_path() -> None:
    result = _knray("validate")
    assert result.returncode == 2
    assert "-f" in result.stderr


KAFKA_BROKER = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: kafka-broker-config}
data:
  bootstrap.servers: "kafka:9092"
  auth.secret.ref.name: kafka-auth
  default.topic.retention: "1h"
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  annotations: {eventing.knative.dev/broker.class: Kafka}
spec:
  config: {apiVersion: v1, kind: ConfigMap, name: kafka-broker-config}
"""


def test_validate_warns_of_a_kafka_broker_config_key_knray_does_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kafka-broker.yaml"
    path.write_text(KAFKA_BROKER)
    assert main(["validate", "-f", str(path)]) == 0
    err = capsys.readouterr().err
    assert "warning: ConfigMap/default/kafka-broker-config: data[default.topic.retention]" in err
    assert "data[auth.secret.ref.name]" not in err  # a key knray reads
    assert main(["validate", "--strict", "-f", str(path)]) == 1

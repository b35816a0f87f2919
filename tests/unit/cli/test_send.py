"""`knray send`: what it refuses before sending anything (no network needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from knray.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["send", *argv])
    return code, capsys.readouterr().err


URL = "http://127.0.0.1:9/ns/default"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--type", "t"], "give --broker NAMESPACE/NAME, --broker-url URL, or --kafka-bootstrap"),
        (["--broker-url", URL], "--type is required"),
        (["--broker", "just-a-name", "--type", "t"], "expected NAMESPACE/NAME"),
        (["--kafka-bootstrap", "k:1", "--type", "t"], "--kafka-bootstrap and --topic go together"),
        (
            ["--kafka-bootstrap", "k:1", "--topic", "x", "--mode", "batch", "--type", "t"],
            "--mode batch is for HTTP",
        ),
        (
            ["--kafka-bootstrap", "k:1", "--topic", "x", "--broker-url", URL, "--type", "t"],
            "not both",
        ),
        (["--broker-url", URL, "--type", "t", "--data", "a", "--data-file", "f"], "not both"),
        (["--broker-url", URL, "--type", "t", "--extension", "novalue"], "NAME=VALUE"),
        (["--broker-url", URL, "--type", "t", "--extension", "Bad-Name=1"], "invalid event"),
        (["--broker-url", URL, "--file", "x.jsonl", "--type", "t"], "--file holds whole events"),
        (["--broker-url", URL, "--file", "/does/not/exist.jsonl"], "--file:"),
    ],
)
def test_bad_options_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, err = run(capsys, *argv)
    assert code == 2
    assert message in err


def test_every_bad_line_is_named_and_nothing_is_sent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = '{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}'
    path = tmp_path / "events.jsonl"
    path.write_text(f'{good}\n\n{{"id": \n{good}\n[1, 2]\n{{"specversion": "1.0"}}\n')
    # The URL answers nothing (port 9, discard): had anything been sent, the error would differ.
    code, err = run(capsys, "--broker-url", URL, "--file", str(path))
    assert code == 2
    assert "3 bad line(s)" in err
    assert "nothing was sent" in err
    for number in (3, 5, 6):
        assert f"{path}:{number}:" in err
    assert f"{path}:1:" not in err
    assert f"{path}:4:" not in err

"""Session tables without Ray: history series, rows, handler revisions."""

from __future__ import annotations

import sys

import pytest

from knray.interactive import History, Rows
from knray.interactive.session import HANDLER_REVISION_LABEL, _collect, _with_handler_revision
from knray.manifests import KnativeService
from knray.manifests.builders import broker, service


def _status(delivered: int, replicas: int) -> dict[str, object]:
    return {
        "triggers": {"Trigger/default/score": {"delivered": delivered}},
        "services": {"default/scorer": {"replicas": replicas}},
    }


def test_history_turns_counters_into_rates_and_replicas() -> None:
    history = History()
    history.add(1.0, _status(0, 0))
    history.add(3.0, _status(100, 2))
    history.add(4.0, _status(30, 1))  # the counter went down: the Broker was re-created
    rows = history.rows()
    rates = [(r["elapsed_s"], r["value"]) for r in rows if r["metric"] == "delivered_per_s"]
    assert rates == [(3.0, 50.0), (4.0, 30.0)]
    assert history.series("replicas") == {"scorer": ([1.0, 3.0, 4.0], [0.0, 2.0, 1.0])}
    assert {r["name"] for r in rows} == {"score", "scorer"}


def test_history_memory_is_bounded() -> None:
    history = History(limit=5)
    for second in range(50):
        history.add(float(second), _status(second, 1))
    assert len(history) == 5


def test_rows_are_a_table() -> None:
    rows = Rows([{"a": 1, "b": "<x>"}, {"a": 2.5, "c": None}])
    assert rows.columns == ["a", "b", "c"]
    html = rows._repr_html_()
    assert "<th>c</th>" in html
    assert "&lt;x&gt;" in html
    frame = rows.to_pandas()
    assert list(frame.columns) == ["a", "b", "c"]
    assert frame["a"].tolist() == [1.0, 2.5]


def notebook_handler(event: object) -> None:
    return None


def test_handlers_of_the_main_module_get_a_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    module = sys.modules[__name__]
    monkeypatch.setitem(sys.modules, "__main__", module)
    defined = service("scorer", handler="__main__:notebook_handler")
    first = _with_handler_revision(defined)
    assert isinstance(first, KnativeService)
    revision = first.spec.template.metadata.labels[HANDLER_REVISION_LABEL]
    assert _with_handler_revision(defined) == first  # same definition: nothing to redeploy

    def notebook_handler(event: object) -> None:  # the cell runs again
        return None

    monkeypatch.setattr(module, "notebook_handler", notebook_handler)
    second = _with_handler_revision(defined)
    assert isinstance(second, KnativeService)
    assert second.spec.template.metadata.labels[HANDLER_REVISION_LABEL] != revision
    imported = service("other", handler="examples.livechat.handlers:moderate")
    assert _with_handler_revision(imported) is imported


def test_resources_from_yaml_objects_and_lists() -> None:
    yaml = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b1}\n"
    found = _collect([yaml, broker("b2"), [broker("b3"), [broker("b4")]]])
    assert [r.name for r in found] == ["b1", "b2", "b3", "b4"]

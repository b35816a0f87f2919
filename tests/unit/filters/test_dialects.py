"""Knative filter semantics for each dialect and for how a Trigger combines them."""

from __future__ import annotations

from typing import Any

import pytest

from knray import CloudEvent
from knray.errors import ManifestError
from knray.filters import (
    AllFilter,
    AttributesFilter,
    ExactFilter,
    MatchAll,
    PrefixFilter,
    SuffixFilter,
    compile_trigger,
)


def event(**attributes: Any) -> CloudEvent:
    base = {"specversion": "1.0", "id": "1", "source": "/chat/room-1", "type": "chat.message"}
    data = attributes.pop("data", None)
    return CloudEvent(base | attributes, data)


def trigger(
    spec_extra: dict[str, Any], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "t"}
    if annotations:
        metadata["annotations"] = annotations
    spec = {"broker": "default", "subscriber": {"uri": "http://127.0.0.1:9/"}} | spec_extra
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": metadata,
        "spec": spec,
    }


def test_attributes_filter_is_exact_and_case_sensitive() -> None:
    f = AttributesFilter({"type": "chat.message", "source": "/chat/room-1"})
    assert f.match(event())
    assert not f.match(event(type="Chat.Message"))
    assert not f.match(event(source="/chat/room-2"))


def test_attributes_filter_empty_value_means_present_and_non_empty() -> None:
    f = AttributesFilter({"subject": ""})
    assert f.match(event(subject="room"))
    assert not f.match(event())
    ext = AttributesFilter({"lang": ""})
    assert ext.match(event(lang="en"))
    assert not ext.match(event())


def test_non_string_extensions_compare_by_canonical_string() -> None:
    assert AttributesFilter({"vip": "true", "level": "7"}).match(event(vip=True, level=7))
    assert not AttributesFilter({"vip": "True"}).match(event(vip=True))


@pytest.mark.parametrize(
    ("dialect", "value", "subject", "expected"),
    [
        (ExactFilter, "room/public-1", "room/public-1", True),
        (ExactFilter, "room/public-1", "room/public-10", False),
        (PrefixFilter, "room/public-", "room/public-1", True),
        (PrefixFilter, "room/public-", "Room/public-1", False),
        (SuffixFilter, "-1", "room/public-1", True),
        (SuffixFilter, "-1", "room/public-2", False),
    ],
)
def test_single_attribute_dialects(
    dialect: type[ExactFilter], value: str, subject: str, expected: bool
) -> None:
    assert dialect("subject", value).match(event(subject=subject)) is expected
    assert dialect("subject", value).match(event()) is False  # absent attribute never matches


def test_single_attribute_dialects_refuse_empty_values() -> None:
    with pytest.raises(ValueError, match="empty"):
        ExactFilter("type", "")


def test_trigger_without_filters_matches_everything() -> None:
    assert isinstance(compile_trigger(trigger({})), MatchAll)
    assert compile_trigger(trigger({"filter": {"attributes": {}}})).match(event())


def test_filters_override_the_legacy_filter() -> None:
    compiled = compile_trigger(
        trigger(
            {
                "filter": {"attributes": {"type": "never.this"}},
                "filters": [{"prefix": {"type": "chat."}}],
            }
        )
    )
    assert compiled.match(event())


def test_filters_entries_are_anded_and_nest() -> None:
    compiled = compile_trigger(
        trigger(
            {
                "filters": [
                    {"prefix": {"type": "chat."}},
                    {
                        "any": [
                            {"exact": {"subject": "room/vip"}},
                            {
                                "all": [
                                    {"suffix": {"source": "-1"}},
                                    {"not": {"exact": {"lang": "fr"}}},
                                ]
                            },
                        ]
                    },
                ]
            }
        )
    )
    assert compiled.match(event(subject="room/vip", source="/x"))
    assert compiled.match(event(lang="en"))
    assert not compiled.match(event(lang="fr"))
    assert not compiled.match(event(type="gift.sent", subject="room/vip"))


def test_cesql_filter_errors_mean_no_match() -> None:
    compiled = compile_trigger(trigger({"filters": [{"cesql": "INT(level) > 3"}]}))
    assert compiled.match(event(level="5"))
    assert not compiled.match(event(level="2"))
    assert not compiled.match(event(level="high"))  # cast error: fail closed
    assert not compiled.match(event())  # missing attribute: fail closed


def test_cel_filter_and_annotation_are_anded() -> None:
    compiled = compile_trigger(
        trigger(
            {"filters": [{"cel": 'event.type == "chat.message"'}]},
            annotations={"knray.dev/cel-filter": "event.data.toxicity > 0.8"},
        )
    )
    toxic = event(datacontenttype="application/json", data={"toxicity": 0.9})
    calm = event(datacontenttype="application/json", data={"toxicity": 0.1})
    assert compiled.match(toxic)
    assert not compiled.match(calm)
    assert not compiled.match(event(datacontenttype="text/plain", data="no json"))


def test_cel_annotation_alone_and_with_attributes() -> None:
    compiled = compile_trigger(
        trigger(
            {"filter": {"attributes": {"type": "chat.gift"}}},
            annotations={"knray.dev/cel-filter": "event.data.amount >= 100"},
        )
    )
    assert isinstance(compiled, AllFilter)
    gift = {"type": "chat.gift", "datacontenttype": "application/json"}
    assert compiled.match(event(**gift, data={"amount": 150}))
    assert not compiled.match(event(**gift, data={"amount": 5}))
    assert not compiled.match(event(datacontenttype="application/json", data={"amount": 150}))


def test_compile_trigger_refuses_invalid_manifests_with_paths() -> None:
    with pytest.raises(ManifestError) as caught:
        compile_trigger(trigger({"filters": [{"exact": {"type": ""}}, {"cesql": "a ="}]}))
    assert set(caught.value.paths) >= {"spec.filters[0].exact.type", "spec.filters[1].cesql"}
    with pytest.raises(ManifestError, match="expected a Trigger"):
        compile_trigger(
            {
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Broker",
                "metadata": {"name": "b"},
            }
        )


def test_cheap_first_ordering_keeps_results() -> None:
    # The compile step reorders ANDed filters by cost; results must equal in-order evaluation.
    spec = {
        "filters": [
            {"cel": 'event.type.startsWith("chat")'},
            {"cesql": "subject LIKE 'room/%'"},
            {"exact": {"lang": "en"}},
        ]
    }
    compiled = compile_trigger(trigger(spec))
    cases = [
        event(subject="room/1", lang="en"),
        event(subject="room/1", lang="fr"),
        event(subject="lobby", lang="en"),
        event(type="gift", subject="room/1", lang="en"),
    ]
    assert [compiled.match(e) for e in cases] == [True, False, False, False]

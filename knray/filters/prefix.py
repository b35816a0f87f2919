"""The ``prefix`` dialect of ``spec.filters`` (Knative subscriptionsapi/prefix_filter.go)."""

from __future__ import annotations

from knray.filters.base import SingleAttributeFilter

__all__ = ["PrefixFilter"]


class PrefixFilter(SingleAttributeFilter):
    """The attribute is present and starts with the value (case-sensitive)."""

    __slots__ = ()

    def test(self, text: str) -> bool:
        return text.startswith(self.value)

"""The ``suffix`` dialect of ``spec.filters`` (Knative subscriptionsapi/suffix_filter.go)."""

from __future__ import annotations

from knray.filters.base import SingleAttributeFilter

__all__ = ["SuffixFilter"]


class SuffixFilter(SingleAttributeFilter):
    """The attribute is present and ends with the value (case-sensitive)."""

    __slots__ = ()

    def test(self, text: str) -> bool:
        return text.endswith(self.value)

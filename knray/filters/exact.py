"""The ``exact`` dialect of ``spec.filters`` (Knative subscriptionsapi/exact_filter.go)."""

from __future__ import annotations

from knray.filters.base import SingleAttributeFilter

__all__ = ["ExactFilter"]


class ExactFilter(SingleAttributeFilter):
    """The attribute is present and equals the value (case-sensitive)."""

    __slots__ = ()

    def test(self, text: str) -> bool:
        return text == self.value

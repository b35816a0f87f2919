"""Trigger filters: the Filter protocol, one module per dialect, and the compile step."""

from knray.filters.all import AllFilter
from knray.filters.any import AnyFilter
from knray.filters.attributes import AttributesFilter
from knray.filters.base import Filter, MatchAll
from knray.filters.cel import CELFilter
from knray.filters.cesql import CESQLFilter
from knray.filters.compile import DIALECTS, compile_filters, compile_trigger
from knray.filters.exact import ExactFilter
from knray.filters.not_ import NotFilter
from knray.filters.prefix import PrefixFilter
from knray.filters.suffix import SuffixFilter

__all__ = [
    "DIALECTS",
    "AllFilter",
    "AnyFilter",
    "AttributesFilter",
    "CELFilter",
    "CESQLFilter",
    "ExactFilter",
    "Filter",
    "MatchAll",
    "NotFilter",
    "PrefixFilter",
    "SuffixFilter",
    "compile_filters",
    "compile_trigger",
]

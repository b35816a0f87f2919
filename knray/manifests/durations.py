"""Duration formats used by Knative manifests.

Delivery specs use ISO-8601 durations (``PT0.5S``); serving annotations use Go durations
(``1m30s``), parsed by Go's ``time.ParseDuration``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

import isodate

__all__ = ["parse_go_duration_s", "parse_iso8601_duration_s"]

_GO_UNITS_S: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration_s(text: str) -> float:
    """Seconds in a Go duration such as ``90s``, ``1m30s``, ``1.5h``, ``-2s`` or ``0``."""
    value = text.strip()
    sign = 1.0
    if value[:1] in "+-":
        sign = -1.0 if value[0] == "-" else 1.0
        value = value[1:]
    if value == "0":
        return 0.0
    if not value:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    position = 0
    while position < len(value):
        match = _GO_PART.match(value, position)
        if match is None:
            raise ValueError(f"invalid duration {text!r} (expected e.g. '30s', '1m30s', '500ms')")
        total += float(match.group(1)) * _GO_UNITS_S[match.group(2)]
        position = match.end()
    return sign * total


def parse_iso8601_duration_s(text: str) -> float:
    """Seconds in an ISO-8601 duration such as ``PT0.2S`` or ``PT1M`` (no months or years)."""
    try:
        duration = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError) as error:
        raise ValueError(f"invalid ISO-8601 duration {text!r}: {error}") from None
    if not isinstance(duration, timedelta):
        # Months and years have no fixed length; Knative's parser rejects them too.
        raise ValueError(f"ISO-8601 duration {text!r} uses years or months; use days or less")
    return duration.total_seconds()

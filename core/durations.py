"""k6-style durations ("500ms", "60s", "1m30s", "2h") to seconds and back."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a k6 duration string. Raises ValueError naming the accepted forms."""
    value = text.strip()
    if not value or _PART.sub("", value) != "":
        raise ValueError(f"{text!r} is not a duration; use forms like '500ms', '30s', '1m30s', '2h'")
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value))
    return seconds


def format_duration(seconds: float) -> str:
    """A k6 duration for a number of seconds (millisecond precision)."""
    millis = round(seconds * 1000)
    if millis % 1000 == 0:
        return f"{millis // 1000}s"
    return f"{millis}ms"

"""Durations as definitions write them (a healthcheck's `interval: 1m30s`): Go's notation
with whole numbers, which Docker's API takes. One grammar, checked at compose and read here."""

from __future__ import annotations

import re

DURATION_RE = re.compile(r"^([0-9]+(ns|us|ms|s|m|h))+$")
_PART = re.compile(r"([0-9]+)(ns|us|ms|s|m|h)")
NANOS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
         "h": 3_600_000_000_000}


def nanoseconds(duration: str) -> int | None:
    """`1m30s` -> 90_000_000_000; None for text that is not a duration."""
    if not DURATION_RE.match(duration):
        return None
    return sum(int(n) * NANOS[unit] for n, unit in _PART.findall(duration))

"""RFC 3339 timestamps as the yagna API writes them: UTC, ``Z``, up to nine fractional digits.

Python before 3.11 rejects ``Z`` and fractions longer than six digits in
``datetime.fromisoformat``, so parsing normalises both first. Every datetime returned is
timezone-aware UTC.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

_FRACTION = re.compile(r"\.(\d+)")
_OFFSET = re.compile(r"([+-]\d{2}:?\d{2}|Z)$")


def parse(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime.

    A timestamp without offset (the daemon writes a few naive ones) is taken as UTC.
    Raises ``ValueError`` when ``text`` is not a timestamp.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    match = _FRACTION.search(value)
    if match:
        digits = (match.group(1) + "000000")[:6]
        value = value[: match.start()] + "." + digits + value[match.end():]
    parsed = datetime.fromisoformat(value.replace(" ", "T", 1))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def to_wire(moment: datetime) -> str:
    """Format as RFC 3339 UTC with microseconds and ``Z``; naive input is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def now() -> datetime:
    """The current instant as an aware UTC datetime."""
    return datetime.now(timezone.utc)

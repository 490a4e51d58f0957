"""One home for reading an ISO 8601 timestamp (a snapshot's date, an era cutoff).

``parse_iso`` accepts what ``datetime.fromisoformat`` reads plus a trailing ``Z`` (git and
PyPI write UTC that way), and always returns an aware datetime: a timestamp that names no
zone is taken as UTC, so two parsed values always compare. Empty or unreadable text is None,
never an exception: callers treat "no date" as "no era".
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse_iso(text: str | None) -> datetime | None:
    """``text`` as an aware datetime (UTC when it names no zone); None when empty or
    unreadable."""
    if not text or not text.strip():
        return None
    try:
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)

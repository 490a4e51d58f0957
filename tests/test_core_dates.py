"""The one ISO 8601 reader: Z and offsets, naive taken as UTC, bad input is None."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from codemill.core.dates import parse_iso


def test_zones_and_naive_stamps_come_back_aware_and_comparable():
    assert parse_iso("2022-11-08T10:00:00Z") == datetime(2022, 11, 8, 10, tzinfo=UTC)
    plus2 = parse_iso("2022-11-08T12:00:00+02:00")
    assert plus2 == datetime(2022, 11, 8, 10, tzinfo=UTC)
    assert plus2.utcoffset() == timezone(timedelta(hours=2)).utcoffset(None)
    assert parse_iso("2022-11-08") == datetime(2022, 11, 8, tzinfo=UTC)
    assert parse_iso(" 2022-11-08T10:00:00 ").tzinfo is UTC


def test_empty_or_unreadable_is_none():
    for text in ("", "   ", None, "yesterday", "2022-13-40"):
        assert parse_iso(text) is None

"""--hours / --since windows and positive numbers (pure)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ot_hpc.monitor.options import parse_positive_number
from ot_hpc.monitor.window import make_window, parse_since

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)


def test_default_is_the_last_24_hours():
    window = make_window(NOW)
    assert window.end == NOW and window.start == NOW - timedelta(hours=24)
    assert window.label == "in the last 24 h"


def test_fractional_hours_give_sub_day_windows():
    window = make_window(NOW, hours=1.5)
    assert window.start == NOW - timedelta(minutes=90)
    assert window.label == "in the last 1.5 h"
    assert window.contains(NOW - timedelta(minutes=89))
    assert not window.contains(NOW - timedelta(minutes=91))
    assert not window.contains(None)


def test_huge_hours_clamp_to_the_epoch():
    assert make_window(NOW, hours=1e12).start.year == 1970


@pytest.mark.parametrize("text, expected", [
    ("2026-11-27", datetime(2026, 11, 27)),
    ("2026-11-27T08:30", datetime(2026, 11, 27, 8, 30)),
    ("2026-11-27 08:30:15", datetime(2026, 11, 27, 8, 30, 15)),
])
def test_since_without_offset_is_local_time(text, expected):
    assert parse_since(text, NOW) == expected.astimezone()


def test_since_with_offset_or_z():
    assert parse_since("2026-11-27T08:30:00+02:00", NOW) == datetime(2026, 11, 27, 6, 30, tzinfo=timezone.utc)
    assert parse_since("2026-11-27T08:30:00Z", NOW) == datetime(2026, 11, 27, 8, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("text", ["yesterday", "27/11/2026", "2026-13-01", ""])
def test_since_rejects_non_dates(text):
    with pytest.raises(ValueError, match="ISO date"):
        parse_since(text, NOW)


def test_since_rejects_the_future():
    with pytest.raises(ValueError, match="future"):
        parse_since("2027-01-01", NOW)


def test_since_window_label():
    assert make_window(NOW, since="2026-11-27").label == "since 2026-11-27"


@pytest.mark.parametrize("text, value", [("7", 7.0), ("0.5", 0.5), (" 1e1 ", 10.0)])
def test_positive_numbers(text, value):
    assert parse_positive_number(text, "--days") == value


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "-inf", "seven", "", "1d"])
def test_non_positive_numbers_are_refused_naming_the_option(text):
    with pytest.raises(ValueError, match="--days must be a positive number"):
        parse_positive_number(text, "--days")

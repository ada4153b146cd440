"""Freeze windows whose end the minute-by-minute search cannot reach in one go stay frozen."""

from __future__ import annotations

from datetime import UTC, datetime

from builds.services import freeze

DECEMBER = ["0-29 * * 12 *", "30-59 * * 12 *"]


def _windows(entries: list[str]) -> list[freeze.Window]:
    return [w for w in map(freeze.parse_window, entries) if w]


def test_minute_windows_that_together_cover_a_month_freeze_a_build_on_its_first_day() -> None:
    until = freeze.frozen_until(_windows(DECEMBER), datetime(2026, 12, 1, tzinfo=UTC))

    assert until is not None
    assert datetime(2026, 12, 1, tzinfo=UTC) < until < datetime(2027, 1, 1, tzinfo=UTC)


def test_re_checking_at_each_answer_reaches_the_end_of_the_month() -> None:
    windows = _windows(DECEMBER)
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    checks = 0
    while (until := freeze.frozen_until(windows, moment)) is not None:
        assert until > moment
        moment, checks = until, checks + 1
        assert checks < 10

    assert moment == datetime(2027, 1, 1, tzinfo=UTC)
    assert checks > 1

"""Cron expressions: Screwdriver's H hashing of buildPeriodically values."""

from __future__ import annotations

import pytest

from pipelines.config import cron

# The npm string-hash package gives these for the same strings (checked with Node).
STRING_HASHES = {"1": 177556, "2": 177559, "42": 5859395, "123456": 3670747394, "abc": 193415941}


@pytest.mark.parametrize(("text", "expected"), sorted(STRING_HASHES.items()))
def test_string_hash_gives_what_the_npm_string_hash_package_gives(text: str, expected: int) -> None:
    assert cron.string_hash(text) == expected


def test_h_becomes_the_job_id_hash_within_each_fields_bounds() -> None:
    # string-hash("7") = 177554: minute %60 = 14, hour %24 = 2, day %31+1 = 18,
    # month %12+1 = 3, weekday %7 = 6.
    assert cron.transform_cron("H H H H H", 7) == "14 2 18 3 6"


def test_a_hashed_range_picks_its_value_inside_the_range() -> None:
    # string-hash("42") = 5859395: 5859395 % 4 = 3 and 5859395 % 11 = 3.
    assert cron.transform_cron("H H(0-3) * * *", 42) == "35 3 * * *"
    assert cron.transform_cron("H(10-20) * * * *", 42) == "13 * * * *"


def test_a_hashed_step_starts_at_the_hash() -> None:
    assert cron.transform_cron("H H/6 * * *", 42) == "35 11/6 * * *"


def test_the_minute_is_always_hashed_as_in_screwdriver() -> None:
    assert cron.transform_cron("0 4 * * *", 42) == "35 4 * * *"
    assert cron.transform_cron("H/15 * * * *", 42) == "35 * * * *"


def test_the_same_job_always_gets_the_same_cron() -> None:
    assert cron.transform_cron("H H * * *", 1234) == cron.transform_cron("H H * * *", 1234)


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("H H * *", "exactly 5 fields"),
        ("0 H H * * *", "exactly 5 fields"),
        ("H H(20-30) * * *", "invalid range"),
        ("H H(5-2) * * *", "invalid range"),
        ("H 25 * * *", "not a valid cron"),
    ],
)
def test_a_value_screwdriver_refuses_is_refused_with_the_reason(expression: str, why: str) -> None:
    with pytest.raises(cron.CronError, match=why):
        cron.transform_cron(expression, 42)

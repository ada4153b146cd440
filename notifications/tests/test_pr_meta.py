"""The summary and the extra statuses, in every form a build writes them."""

from __future__ import annotations

from typing import Any

import pytest

from notifications.pr_meta import check_values, splits_comments, summary_lines


@pytest.mark.parametrize(
    ("meta", "lines"),
    [
        ({}, {}),
        ({"summary": "Coverage is 81%"}, {"": "Coverage is 81%"}),
        ({"meta": {"summary": "Coverage is 81%"}}, {"": "Coverage is 81%"}),
        ({"summary": {"b": "two", "a": 1}}, {"a": "__a__ - 1", "b": "__b__ - two"}),
        ({"meta": {"summary": {"a": "one"}}}, {"a": "__a__ - one"}),
        # A key in both places shows meta.summary's; the plain line comes first.
        (
            {"summary": {"a": "top", "b": "top"}, "meta": {"summary": {"a": "documented"}}},
            {"a": "__a__ - documented", "b": "__b__ - top"},
        ),
        (
            {"summary": "plain", "meta": {"summary": {"z": "keyed"}}},
            {"": "plain", "z": "__z__ - keyed"},
        ),
        ({"summary": "same", "meta": {"summary": "same"}}, {"": "same"}),
        # Nothing that is not text or a number; no blank plain line.
        ({"summary": {"x": {"nested": 1}, "y": True, "": "no key"}}, {}),
        ({"summary": "  ", "meta": "not a dict"}, {}),
        ("not a dict", {}),
    ],
)
def test_the_summary_is_read_in_its_plain_and_keyed_forms(meta: Any, lines: dict[str, str]) -> None:
    assert summary_lines(meta) == lines
    assert list(summary_lines(meta)) == list(lines)


def test_statuses_are_read_from_both_places_the_documented_one_winning() -> None:
    meta = {"status": {"lint": "top", "unit": "{}"}, "meta": {"status": {"lint": "documented"}}}

    assert check_values(meta) == {"lint": "documented", "unit": "{}"}
    assert check_values({"status": "SUCCESS"}) == {}


def test_split_comments_is_asked_for_in_either_place() -> None:
    assert splits_comments({"splitComments": "yes"})
    assert splits_comments({"meta": {"splitComments": True}})
    assert not splits_comments({"meta": {}})

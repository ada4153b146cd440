"""Who hears about a build and when, from a job's settings and meta, as Screwdriver reads them."""

from __future__ import annotations

import pytest

from notifications import rules
from notifications.rules import EmailRule, SlackRule


def test_the_short_forms_watch_failures_only() -> None:
    assert rules.email_rule({"email": "a@example.com"}) == EmailRule(
        ("a@example.com",), frozenset({"FAILURE"})
    )
    assert rules.email_rule({"email": ["a@example.com", "b@example.com"]}) == EmailRule(
        ("a@example.com", "b@example.com"), frozenset({"FAILURE"})
    )
    assert rules.slack_rule({"slack": "builds"}) == SlackRule(("builds",), frozenset({"FAILURE"}))
    assert rules.slack_rule({"slack": ["a", "b", "a"]}) == SlackRule(
        ("a", "b"), frozenset({"FAILURE"})
    )


def test_the_long_forms_keep_their_statuses_format_and_message() -> None:
    assert rules.email_rule(
        {"email": {"addresses": ["a@example.com"], "statuses": ["SUCCESS", "FAILURE"]}}
    ) == EmailRule(("a@example.com",), frozenset({"SUCCESS", "FAILURE"}))
    assert rules.slack_rule(
        {"slack": {"channels": ["x"], "statuses": [], "minimized": True, "message": "hi"}}
    ) == SlackRule(("x",), frozenset(), minimized=True, message="hi")
    assert rules.slack_rule({"slack": {"channels": ["x"]}}) == SlackRule(
        ("x",), frozenset({"FAILURE"})
    )


@pytest.mark.parametrize(
    "config",
    [{}, {"email": []}, {"email": "not an address"}, {"slack": {"statuses": ["FAILURE"]}}, None],
)
def test_settings_that_name_nobody_notify_nobody(config: object) -> None:
    assert rules.email_rule(config) is None
    assert rules.slack_rule(config) is None


@pytest.mark.parametrize(
    ("status", "watched", "fixed", "said"),
    [
        ("FAILURE", {"FAILURE"}, False, "FAILURE"),
        ("SUCCESS", {"FAILURE"}, False, None),
        # The first success after a failure is news to whoever watches failures.
        ("SUCCESS", {"FAILURE"}, True, "FIXED"),
        ("SUCCESS", {"SUCCESS", "FAILURE"}, True, "FIXED"),
        # Watching successes only, a fixing build is a success like any other.
        ("SUCCESS", {"SUCCESS"}, True, "SUCCESS"),
        ("SUCCESS", {"SUCCESS"}, False, "SUCCESS"),
        ("ABORTED", {"FAILURE"}, False, None),
        ("RUNNING", {"RUNNING", "FAILURE"}, False, "RUNNING"),
        ("FAILURE", set(), False, None),
    ],
)
def test_what_a_notice_says_follows_screwdriver(
    status: str, watched: set[str], fixed: bool, said: str | None
) -> None:
    assert rules.notice_status(status, watched, fixed=fixed) == said


def test_job_meta_replaces_channels_addresses_and_the_format() -> None:
    meta = {
        "notification": {
            "slack": {
                "main": {"channels": " a, ,b ,a", "minimized": "false"},
                "other": {"channels": ["c"], "minimized": True},
            },
            "email": {"main": {"addresses": "x@example.com, nope, y@example.com"}},
        }
    }
    assert rules.meta_channels(meta, "main") == ("a", "b")
    assert rules.meta_channels(meta, "other") == ("c",)
    assert rules.meta_channels(meta, "missing") is None
    assert rules.meta_addresses(meta, "main") == ("x@example.com", "y@example.com")
    assert rules.meta_addresses(meta, "other") is None
    assert rules.meta_minimized(meta, "main", True) is False
    assert rules.meta_minimized(meta, "other", False) is True
    assert rules.meta_minimized(meta, "missing", True) is True
    assert rules.meta_channels({"notification": "x"}, "main") is None


def test_the_slack_line_is_the_jobs_meta_then_the_builds_then_the_settings() -> None:
    rule = SlackRule(("c",), frozenset({"FAILURE"}), message="from settings")
    both = {"notification": {"slack": {"message": "any job", "main": {"message": "main only"}}}}
    assert rules.slack_message(rule, both, "main", "FAILURE") == "main only"
    assert rules.slack_message(rule, both, "other", "FAILURE") == "any job"
    assert rules.slack_message(rule, {}, "main", "FAILURE") == "from settings"
    per_outcome = SlackRule(
        ("c",),
        frozenset({"FAILURE"}),
        message={"default": "d", "success": "yay", "unfurl_links": False},
    )
    assert rules.slack_message(per_outcome, {}, "main", "FIXED") == "yay"
    assert rules.slack_message(per_outcome, {}, "main", "FAILURE") == "d"
    assert rules.unfurls_links(per_outcome) is False
    assert rules.unfurls_links(rule) is None

"""`{% build_feedback build %}`: a build page's test results and notices;
`{% build_tests build %}`: the same test results alone, where other pages list builds."""

from __future__ import annotations

from typing import Any

from django import template

from builds.models import Build
from notifications import selectors

register = template.Library()


@register.inclusion_tag("notifications/_build_feedback.html")
def build_feedback(build: Build) -> dict[str, Any]:
    return {
        "build": build,
        "tests": selectors.reported_tests(build),
        "notices": selectors.notices_of(build),
    }


@register.inclusion_tag("notifications/_reported_tests.html")
def build_tests(build: Build) -> dict[str, Any]:
    """The test results the build's meta reports, as its page shows them; nothing if none."""
    return {"tests": selectors.reported_tests(build)}

"""Reads of what a build told people, and the test results its meta reports, for its page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from builds.models import Build
from notifications.models import Notice

_NUMBER = re.compile(r"\d+(\.\d+)?")


@dataclass(frozen=True)
class ReportedTests:
    """Screwdriver's `tests.coverage`, `tests.results` and their artifact links."""

    coverage: str  # "85.5%" or as written; "" when not reported
    coverage_href: str
    results: str  # "10/10"
    results_href: str


def notices_of(build: Build) -> list[Notice]:
    """The build's notices, oldest first."""
    return list(Notice.objects.filter(build=build).order_by("pk"))


def _artifact_href(build: Build, value: Any) -> str:
    # A path of the build's artifacts ("/test/report.html"), as Screwdriver's UI takes it;
    # anything else (another site, "..") is not linked.
    if not isinstance(value, str) or "://" in value or value.startswith("//"):
        return ""
    path = value.strip().lstrip("/")
    if not path or any(part in ("", ".", "..") for part in path.split("/")):
        return ""
    return f"/v4/builds/{build.pk}/artifacts/{quote(path)}"


def _shown(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return str(value).strip()[:64]


def reported_tests(build: Build) -> ReportedTests | None:
    """What `tests.*` of the build's meta reports; None when it reports nothing."""
    tests = (build.meta or {}).get("tests") if isinstance(build.meta, dict) else None
    if not isinstance(tests, dict):
        return None
    coverage, results = _shown(tests.get("coverage")), _shown(tests.get("results"))
    if not coverage and not results:
        return None
    if _NUMBER.fullmatch(coverage):
        coverage += "%"
    return ReportedTests(
        coverage=coverage,
        coverage_href=_artifact_href(build, tests.get("coverageUrl")) if coverage else "",
        results=results,
        results_href=_artifact_href(build, tests.get("resultsUrl")) if results else "",
    )

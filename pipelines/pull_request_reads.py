"""Reads of a pipeline's pull requests for its Pull Requests tab, in a fixed number of queries.

A pull request is known by its jobs, `PR-<n>:<job>` (as in Screwdriver), and its events (type
`pr`, `pr_num` n). It is open while one of its jobs is not archived: closing it archives them
all (`services.pull_requests.close_pr`), a new push to it brings them back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.db.models import F, Max, Window
from django.urls import reverse

from builds.models import Build
from notifications import pr_meta
from pipelines.models import Event, Job, Pipeline
from pipelines.selectors import LIGHT_BUILD_DEFER, duration_text

# The tab lists this many pull requests, the newest (highest number) first.
MAX_PULLS = 100
_PR_JOB = re.compile(r"PR-(\d+):(.+)", re.DOTALL)


@dataclass(frozen=True)
class PullBuild:
    """The latest build of one of a pull request's jobs, with what its meta reports."""

    build: Build
    job_name: str  # the pipeline's job it runs: "test" for PR-7:test
    href: str

    @property
    def duration(self) -> str:
        return duration_text(self.build.start_time, self.build.end_time)

    @property
    def summary(self) -> list[str]:
        """The lines of the job's summary comment on the pull request (markdown, unrendered)."""
        return list(pr_meta.summary_lines(self.build.meta).values())


@dataclass(frozen=True)
class PullRequestRow:
    """One pull request: its latest event's title, author and link, and its jobs' builds."""

    number: int
    closed: bool
    event: Event | None
    builds: list[PullBuild]
    href: str

    def _pr(self, key: str) -> str:
        pr = self.event.pr if self.event is not None else None
        value = pr.get(key) if isinstance(pr, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def title(self) -> str:
        return self._pr("title")

    @property
    def author(self) -> str:
        creator = self.event.creator if self.event is not None else None
        fallback = creator.get("username") if isinstance(creator, dict) else None
        return self._pr("username") or (fallback if isinstance(fallback, str) else "")

    @property
    def url(self) -> str:
        """The pull request on its SCM; only a web link, since everyone who reads it follows it."""
        url = self._pr("url")
        return url if url.startswith(("https://", "http://")) else ""

    @property
    def updated(self) -> datetime | None:
        return self.event.created_at if self.event is not None else None


def pull_requests(
    pipeline: Pipeline, *, closed: bool = False, number: int | None = None
) -> list[PullRequestRow]:
    """The pipeline's open pull requests (and the closed ones too with `closed`), newest first;
    only pull request `number` when given, open or closed."""
    jobs = Job.objects.filter(pipeline=pipeline, name__startswith="PR-")
    if number is not None:
        jobs = jobs.filter(name__startswith=f"PR-{number}:")
    elif not closed:
        jobs = jobs.filter(archived=False)
    open_numbers: set[int] = set()
    job_ids: dict[int, list[int]] = {}
    for job_id, name, archived in jobs.values_list("id", "name", "archived"):
        match = _PR_JOB.fullmatch(name)
        if match is None:
            continue
        job_ids.setdefault(int(match.group(1)), []).append(job_id)
        if not archived:
            open_numbers.add(int(match.group(1)))
    shown = sorted(job_ids, reverse=True)[:MAX_PULLS]
    if not shown:
        return []
    latest = (
        Event.objects.filter(pipeline=pipeline, type=Event.Type.PR, pr_num__in=shown)
        .values("pr_num")
        .annotate(latest=Max("id"))
        .values("latest")
    )
    events = {
        e.pr_num: e
        for e in Event.objects.filter(pk__in=latest).defer(
            "workflow_graph", "job_configs", "meta", "commit"
        )
    }
    # Each job's builds of the last event that built it (its permutations), in one query.
    builds = (
        Build.objects.filter(job_id__in=[i for n in shown for i in job_ids[n]])
        .select_related("job")
        .defer(*(f for f in LIGHT_BUILD_DEFER if f != "meta"), "job__permutations")
        .annotate(last_event=Window(expression=Max("event_id"), partition_by=[F("job_id")]))
        .filter(event_id=F("last_event"))
        .order_by("job__name", "permutation")
    )
    by_number: dict[int, list[PullBuild]] = {}
    for build in builds:
        match = _PR_JOB.fullmatch(build.job.name)
        if match is None:
            continue
        by_number.setdefault(int(match.group(1)), []).append(
            PullBuild(
                build=build,
                job_name=match.group(2),
                href=reverse("builds:detail", args=[pipeline.pk, build.pk]),
            )
        )
    return [
        PullRequestRow(
            number=n,
            closed=n not in open_numbers,
            event=events.get(n),
            builds=by_number.get(n, []),
            href=reverse("pipelines:pull", args=[pipeline.pk, n]),
        )
        for n in shown
    ]

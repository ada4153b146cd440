"""Freeze windows: a build about to be queued inside its job's ``freezeWindows`` waits FROZEN.

Part of the build service package: like the rest of it, it changes ``Build.status`` only by
conditional updates, under the pipeline's row lock (lock order: pipeline, build, event).
Every "now" is ``django.utils.timezone.now()`` in UTC, as Screwdriver reads its windows in UTC.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from django_q.models import Schedule

from builds import lifecycle, live
from builds.models import Build, BuildStatus
from pipelines.config import cron

logger = logging.getLogger(__name__)

# Screwdriver's queue matches this in the event's cause message, case and brackets included.
FORCE_START = "[force start]"
RELEASE_TASK = "pipelines.tasks.release_frozen_builds"
# How the API and the UI word a person's abort; a FROZEN build's says so, as Screwdriver's does.
ABORTED_BY = "Aborted by "
# A window that covers every minute of a whole year never ends: such a window freezes nothing.
HORIZON = timedelta(days=366)
_MAX_STEPS = 20_000


@dataclass(frozen=True)
class Window:
    """One freeze window's cron fields as sets; ``None`` is a field that allows every value."""

    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days: frozenset[int] | None
    last_day: bool
    months: frozenset[int] | None
    weekdays: frozenset[int] | None
    nth_weekdays: dict[int, frozenset[int]] = field(default_factory=dict)

    def covers(self, moment: datetime) -> bool:
        """Whether ``moment`` (UTC) is inside: every field matches it, as Screwdriver checks."""
        return (
            _allows(self.minutes, moment.minute)
            and _allows(self.hours, moment.hour)
            and self._day_matches(moment)
            and _allows(self.months, moment.month)
            and self._weekday_matches(moment)
        )

    def covers_whole_hour(self) -> bool:
        return self.minutes is None

    def covers_whole_day(self) -> bool:
        return self.minutes is None and self.hours is None

    def _day_matches(self, moment: datetime) -> bool:
        if self.days is None and not self.last_day:
            return True
        last = calendar.monthrange(moment.year, moment.month)[1]
        return (self.days is not None and moment.day in self.days) or (
            self.last_day and moment.day == last
        )

    def _weekday_matches(self, moment: datetime) -> bool:
        if self.weekdays is None:
            return True
        weekday = (moment.weekday() + 1) % 7  # cron counts from Sunday = 0
        if weekday not in self.weekdays:
            return False
        nths = self.nth_weekdays.get(weekday)
        return not nths or (moment.day - 1) // 7 + 1 in nths


def _allows(values: frozenset[int] | None, value: int) -> bool:
    return values is None or value in values


def _field(values: list[Any]) -> frozenset[int] | None:
    if values == ["*"]:
        return None
    return frozenset(int(v) for v in values if isinstance(v, int))


def parse_window(expression: str) -> Window | None:
    """A ``freezeWindows`` entry as a Window; None for one we cannot read (logged, ignored)."""
    fields = str(expression).split()
    if len(fields) != 5:
        return None
    # Screwdriver reads `?` (one of day-of-month and day-of-week must be it) as "any".
    text = " ".join("*" if f == "?" else f for f in fields)
    try:
        expanded, nth = cron.expand(text)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("Freeze window %r is ignored: %s", expression, exc)
        return None
    minutes, hours, days, months, weekdays = expanded
    return Window(
        minutes=_field(minutes),
        hours=_field(hours),
        days=None if days == ["*"] else frozenset(int(d) for d in days if isinstance(d, int)),
        last_day="l" in days,
        months=_field(months),
        weekdays=_field(weekdays),
        nth_weekdays={int(k): frozenset(int(n) for n in v) for k, v in (nth or {}).items()},
    )


def windows_of(config: dict[str, Any]) -> list[Window]:
    """The readable freeze windows of one job permutation's config."""
    raw = config.get("freezeWindows") or []
    entries = [raw] if isinstance(raw, str) else list(raw)
    return [w for w in (parse_window(str(e)) for e in entries) if w is not None]


def frozen_until(windows: Iterable[Window], now: datetime) -> datetime | None:
    """The first minute at or after ``now`` outside every window; None when not frozen now.

    None also for windows that never end within a year, which Screwdriver does not freeze either.
    """
    windows = list(windows)
    moment = now.astimezone(UTC)
    if not any(w.covers(moment) for w in windows):
        return None
    moment = moment.replace(second=0, microsecond=0)
    limit = moment + HORIZON
    for _ in range(_MAX_STEPS):
        if moment > limit:
            return None
        inside = next((w for w in windows if w.covers(moment)), None)
        if inside is None:
            return moment
        # Skip whole days and hours a window covers, so a month-long window is a few steps.
        if inside.covers_whole_day():
            moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
        elif inside.covers_whole_hour():
            moment = (moment + timedelta(hours=1)).replace(minute=0)
        else:
            moment += timedelta(minutes=1)
    # Out of steps, not out of windows (minute windows that together cover hours or days):
    # stay frozen until where the search got to, which re-checks then, rather than fail open.
    return moment


def _force_started(build: Build) -> bool:
    return FORCE_START in (build.event.cause_message or "")


def _frozen_message(until: datetime) -> str:
    return f"Blocked by freeze window, re-queued at {until:%Y-%m-%dT%H:%M:%SZ}."


def hold_frozen(build_ids: list[int]) -> tuple[list[int], list[Build]]:
    """Freeze the QUEUED builds whose job is inside a freeze window now.

    Returns the ids that may go on, and the builds collapsed meanwhile: the caller holds the
    pipeline's row lock, and the newest build of a job wins, so older FROZEN builds of the
    job in other events are COLLAPSED, as Screwdriver's queue keeps one frozen entry per job.
    """
    now = timezone.now()
    to_run = []
    collapsed: list[Build] = []
    builds = Build.objects.filter(pk__in=build_ids).select_related("job", "event").order_by("pk")
    for build in builds:
        if build.status != BuildStatus.QUEUED:
            to_run.append(build.pk)
            continue
        until = None if _force_started(build) else frozen_until(_windows(build), now)
        collapsed += _collapse_older_frozen(build)
        if until is None:
            to_run.append(build.pk)
            continue
        lifecycle.transition(
            build.pk,
            BuildStatus.FROZEN,
            only_from=[BuildStatus.QUEUED],
            status_message=_frozen_message(until),
        )
        _schedule_release(build.job_id, until)
        live.publish_build(build_id=build.pk)
    return sorted(to_run), collapsed


def _windows(build: Build) -> list[Window]:
    return windows_of(build.job_config())


def _collapse_older_frozen(build: Build) -> list[Build]:
    older = Build.objects.filter(
        job_id=build.job_id, status=BuildStatus.FROZEN, pk__lt=build.pk
    ).exclude(event_id=build.event_id)
    collapsed = []
    for old in older.select_related("event", "job"):
        if lifecycle.transition(
            old.pk,
            BuildStatus.COLLAPSED,
            only_from=[BuildStatus.FROZEN],
            strict=False,
            end_time=timezone.now(),
            status_message=f"Collapsed into build {build.pk} of a newer event.",
        ):
            old.status = BuildStatus.COLLAPSED
            collapsed.append(old)
    return collapsed


def frozen_abort_message(message: str) -> str:
    """Screwdriver's wording when a person aborts a FROZEN build: "Frozen build aborted by X"."""
    if message.startswith(ABORTED_BY):
        return f"Frozen build aborted by {message.removeprefix(ABORTED_BY)}"
    return message


def forget_release(*, job_id: int) -> None:
    """Drop the job's one-off release once none of its builds waits FROZEN any more."""
    if not Build.objects.filter(job_id=job_id, status=BuildStatus.FROZEN).exists():
        Schedule.objects.filter(name=release_schedule_name(job_id)).delete()


def release_schedule_name(job_id: int) -> str:
    return f"sd-freeze-release-job-{job_id}"


def _schedule_release(job_id: int, until: datetime) -> None:
    # One ONCE schedule per job at the earliest end any of its frozen builds waits for; the
    # release re-schedules the builds whose window is still on, so running early is harmless.
    name = release_schedule_name(job_id)
    existing = Schedule.objects.filter(name=name).first()
    if existing is not None:
        if existing.next_run is None or existing.next_run > until:
            Schedule.objects.filter(pk=existing.pk).update(next_run=until)
        return
    Schedule.objects.create(
        name=name,
        func=RELEASE_TASK,
        args=str(job_id),
        schedule_type=Schedule.ONCE,
        next_run=until,
        repeats=-1,
    )


def pipelines_with_frozen_builds(*, job_id: int | None = None) -> list[int]:
    """The pipelines that have FROZEN builds (of one job, or any)."""
    frozen = Build.objects.filter(status=BuildStatus.FROZEN)
    if job_id is not None:
        frozen = frozen.filter(job_id=job_id)
    return sorted(set(frozen.values_list("job__pipeline_id", flat=True)))


def thaw(*, pipeline_id: int, job_id: int | None) -> dict[int, list[int]]:
    """Queue again the pipeline's FROZEN builds whose window has ended, by event id.

    The caller holds the pipeline's row lock; builds still inside a window get their release
    scheduled again.
    """
    now = timezone.now()
    frozen = Build.objects.filter(job__pipeline_id=pipeline_id, status=BuildStatus.FROZEN)
    if job_id is not None:
        frozen = frozen.filter(job_id=job_id)
    by_event: dict[int, list[int]] = {}
    for build in frozen.select_related("job", "event").order_by("pk"):
        until = frozen_until(_windows(build), now)
        if until is not None:
            _schedule_release(build.job_id, until)
            Build.objects.filter(pk=build.pk, status=BuildStatus.FROZEN).update(
                status_message=_frozen_message(until)
            )
            continue
        if lifecycle.transition(
            build.pk,
            BuildStatus.QUEUED,
            only_from=[BuildStatus.FROZEN],
            strict=False,
            status_message="",
        ):
            by_event.setdefault(build.event_id, []).append(build.pk)
    return by_event

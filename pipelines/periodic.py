"""Periodic builds: ``screwdriver.cd/buildPeriodically`` as one django-q2 CRON schedule per job.

Screwdriver spreads periodic builds over the clock by replacing ``H`` with a number hashed
from the job's id, and always hashes the minute; we do the same, so a job keeps its minute.
Schedules are evaluated in UTC (``Q_CLUSTER["time_zone"]``), as Screwdriver's are.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from croniter import croniter
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from pipelines.models import Job, Pipeline

if TYPE_CHECKING:
    from pipelines.models import Event

logger = logging.getLogger(__name__)

PERIODIC_ANNOTATION = "screwdriver.cd/buildPeriodically"
START_TASK = "pipelines.tasks.start_periodic_build"
SCHEDULER_NAME = "Screwdriver scheduler"
SCHEDULER_USERNAME = "sd:scheduler"
CAUSE_MESSAGE = "Started by periodic build scheduler"

_HASH_RANGE = re.compile(r"H\(\d+-\d+\)")
_HASH_STEP = re.compile(r"H/\d+")
_PR_JOB = re.compile(r"PR-\d+:")
# (low, high) of minute, hour, day of month, month, day of week, as Screwdriver bounds `H`.
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


class CronError(ValueError):
    """A ``buildPeriodically`` value that cannot become a schedule; the message says why."""


def string_hash(text: str) -> int:
    """The npm ``string-hash`` of text (djb2 over the characters, last to first), unsigned."""
    value = 5381
    for char in reversed(text):
        product = (value * 33) & 0xFFFFFFFF
        value = product ^ ord(char)
        # JavaScript's `^` works on signed 32-bit integers.
        if value >= 0x80000000:
            value -= 0x100000000
    return value & 0xFFFFFFFF


def _hashed(hash_value: int, low: int, high: int) -> int:
    return hash_value % (high + 1 - low) + low


def _transform_value(text: str, low: int, high: int, hash_value: int) -> str:
    """Replace ``H``, ``H/n`` and ``H(a-b)`` in each comma-separated part of one field."""
    parts = text.split(",")
    for i, part in enumerate(parts):
        if part == "H":
            parts[i] = str(_hashed(hash_value, low, high))
        elif _HASH_STEP.search(part):
            parts[i] = part.replace("H", str(_hashed(hash_value, low, high)), 1)
        elif _HASH_RANGE.search(part):
            first = int(part[2 : part.rindex("-")])
            last = int(part[part.rindex("-") + 1 : part.rindex(")")])
            if first < low or last > high or first > last:
                raise CronError(f"{part} has an invalid range, expected range {low}-{high}.")
            parts[i] = str(_hashed(hash_value, first, last))
    return ",".join(parts)


def transform_cron(expression: str, job_id: int) -> str:
    """Turn a ``buildPeriodically`` value into a plain cron expression for this job."""
    fields = expression.strip().split()
    if len(fields) != 5:
        raise CronError(
            f"{expression!r} does not have exactly 5 fields (minute hour day month weekday): "
            "fix screwdriver.cd/buildPeriodically."
        )
    hash_value = string_hash(str(job_id))
    # Screwdriver always hashes the minute, so periodic builds never all start at :00.
    if fields[0] != "H" and not _HASH_RANGE.search(fields[0]):
        fields[0] = "H"
    fields = [
        _transform_value(text, low, high, hash_value)
        for text, (low, high) in zip(fields, _BOUNDS, strict=True)
    ]
    result = " ".join(fields)
    if not croniter.is_valid(result):
        raise CronError(
            f"{expression!r} is not a valid cron expression ({result!r} after H was replaced): "
            "fix screwdriver.cd/buildPeriodically."
        )
    return result


def periodic_cron_of(job: Job) -> str | None:
    """The job's ``buildPeriodically`` value, from its first permutation as Screwdriver reads it."""
    permutations: list[dict[str, Any]] = job.permutations or []
    annotations = (permutations[0].get("annotations") or {}) if permutations else {}
    value = annotations.get(PERIODIC_ANNOTATION)
    if value is None:
        return None
    return str(value).strip() or None


def schedule_name(*, pipeline_id: int, job_id: int) -> str:
    return f"sd-periodic-{pipeline_id}-{job_id}"


def next_run_of(cron: str, now: datetime | None = None) -> datetime:
    """When a cron expression fires next, in UTC."""
    start = (now or timezone.now()).astimezone(UTC)
    return croniter(cron, start).get_next(datetime)


def _wanted_crons(pipeline: Pipeline) -> dict[str, tuple[int, str]]:
    if pipeline.state != Pipeline.State.ACTIVE:
        return {}
    wanted = {}
    for job in Job.objects.filter(pipeline=pipeline, archived=False, state=Job.State.ENABLED):
        value = periodic_cron_of(job)
        # A pull request's copy of a job runs for the pull request only, never on a clock.
        if not value or _PR_JOB.match(job.name):
            continue
        try:
            cron = transform_cron(value, job.pk)
        except CronError as exc:
            logger.warning("Job %s gets no periodic builds: %s", job.pk, exc)
            continue
        wanted[schedule_name(pipeline_id=pipeline.pk, job_id=job.pk)] = (job.pk, cron)
    return wanted


@transaction.atomic
def sync_schedules(*, pipeline: Pipeline) -> None:
    """Keep one CRON schedule per periodic job of the pipeline: create, update, delete."""
    # Locking the schedules would lock nothing when there are none yet, and a schedule's name
    # is not unique: the pipeline's row serialises two syncs, or both would create one.
    if not Pipeline.objects.select_for_update().filter(pk=pipeline.pk).exists():
        return
    wanted = _wanted_crons(pipeline)
    existing: dict[str, Schedule] = {}
    extra: list[int] = []
    for schedule in Schedule.objects.filter(
        name__startswith=f"sd-periodic-{pipeline.pk}-"
    ).order_by("pk"):
        # Two builds a period is what a duplicate left by an earlier race would cause.
        if schedule.name in existing:
            extra.append(schedule.pk)
        else:
            existing[schedule.name] = schedule
    extra += [s.pk for n, s in existing.items() if n not in wanted]
    Schedule.objects.filter(pk__in=extra).delete()
    for name, (job_id, cron) in wanted.items():
        current = existing.get(name)
        if current is None:
            Schedule.objects.create(
                name=name,
                func=START_TASK,
                args=str(job_id),
                schedule_type=Schedule.CRON,
                cron=cron,
                repeats=-1,
                next_run=next_run_of(cron),
            )
        elif current.cron != cron or current.func != START_TASK:
            Schedule.objects.filter(pk=current.pk).update(
                func=START_TASK, args=str(job_id), cron=cron, next_run=next_run_of(cron)
            )


def start_periodic_build(*, job_id: int) -> Event | None:
    """Start an event from the job at its branch head, as Screwdriver's scheduler does.

    A job that is gone, disabled or archived, or a pipeline that is not active, loses its
    schedule here instead: those changes happen in places that do not know about schedules.
    """
    from pipelines.services.events import Creator, start_event
    from pipelines.services.pipelines import PipelineError

    job = Job.objects.select_related("pipeline").filter(pk=job_id).first()
    if job is None:
        Schedule.objects.filter(
            name__startswith="sd-periodic-", name__endswith=f"-{job_id}"
        ).delete()
        return None
    if (
        job.archived
        or job.state != Job.State.ENABLED
        or job.pipeline.state != Pipeline.State.ACTIVE
        or not periodic_cron_of(job)
    ):
        sync_schedules(pipeline=job.pipeline)
        return None
    try:
        return start_event(
            pipeline=job.pipeline,
            start_from=job.name,
            creator=Creator(name=SCHEDULER_NAME, username=SCHEDULER_USERNAME),
            cause_message=CAUSE_MESSAGE,
        )
    except PipelineError as exc:
        logger.warning("Periodic build of job %s did not start: %s", job_id, exc.message)
        return None

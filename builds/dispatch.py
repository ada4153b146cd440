"""Dispatch between the build kernel and the engines: start, stop, clean up and reap builds.

The engines (the `executors` package) never see a `Build`: this module describes each launch
and each launched build to them, and writes what they answer back to the database.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

# A module import, as builds.services imports this one: either may be loaded first.
from builds import services as build_services
from builds import stats
from builds.models import Build, BuildStatus
from executors.base import BuildHandle, ExecutorError, LaunchRequest
from executors.registry import executor_name_for, get_executor, refusal
from executors.resources import docker_enabled
from screwdriver_site.tokens import issue_build_token

logger = logging.getLogger(__name__)

# A QUEUED build nobody picked up for this long lost its task (a worker died holding it).
REQUEUE_AFTER = timedelta(minutes=2)
# How long past its timeout a build may run before the reaper ends it itself.
TIMEOUT_GRACE = timedelta(minutes=2)
# How long a finished build's launcher may take to exit (teardown, last logs) before cleanup
# ends it.
CLEANUP_PATIENCE = timedelta(seconds=90)


def start_build(*, build_id: int) -> None:
    """Claim a QUEUED build and launch it on its engine; safe to run twice for one build."""
    now = timezone.now()
    build = Build.objects.select_related("job", "event").filter(pk=build_id).first()
    if build is None or build.status != BuildStatus.QUEUED:
        return
    annotations = build.job_config().get("annotations") or {}
    name = executor_name_for(annotations)
    event = build.event
    refused = refusal(
        name,
        pull_request=event.type == event.Type.PR,
        fork=bool((event.pr or {}).get("fork")),
        docker=docker_enabled(annotations),
    )
    if refused:
        build_services.fail_lost_build(build_id=build_id, message=refused)
        return
    claimed = Build.objects.filter(
        pk=build_id, status=BuildStatus.QUEUED, dispatched_at__isnull=True
    ).update(
        dispatched_at=now,
        executor=name,
        lease_expires_at=now + build_services.START_GRACE,
    )
    if not claimed:
        return
    build.refresh_from_db()
    try:
        state = get_executor(name).start(launch_request(build, token=issue_build_token(build)))
    except ExecutorError as exc:
        if exc.permanent:
            build_services.fail_lost_build(build_id=build_id, message=exc.message)
            return
        # Give the claim back so django-q's retry (or the reaper) can try again.
        Build.objects.filter(pk=build_id, status=BuildStatus.QUEUED).update(dispatched_at=None)
        raise
    reported = stats.from_engine(state)
    state = {key: value for key, value in state.items() if key != "stats"}
    Build.objects.filter(pk=build_id).update(executor_state=state)
    if reported:
        stats.record(build_id, reported)
    # A stop that came while the engine was starting found no state to act on: act now.
    if Build.objects.filter(pk=build_id, status=BuildStatus.ABORTED).exists():
        stop_build(build_id=build_id)


def stop_build(*, build_id: int) -> None:
    build = Build.objects.filter(pk=build_id).first()
    if build is None or not build.executor_state:
        return
    try:
        get_executor(build.executor).stop(handle(build))
    except ExecutorError:
        logger.exception("Could not stop build %s", build_id)


def cleanup_build(*, build_id: int, attempt: int = 0) -> None:
    """Remove what is left of a finished build once its launcher has exited on its own."""
    build = Build.objects.filter(pk=build_id).first()
    if build is None or not build.is_finished or build.dispatched_at is None:
        return  # a build that never reached an engine left nothing there
    executor = get_executor(build.executor)
    ended = build.end_time or timezone.now()
    # A stopped launcher still runs teardown and sends its last logs: wait for it to exit,
    # and end it by force only once it has had its time.
    if executor.is_alive(handle(build)) and timezone.now() - ended < CLEANUP_PATIENCE:
        schedule(
            "executors.tasks.cleanup_build",
            build_id,
            attempt + 1,
            schedule_type=Schedule.ONCE,
            next_run=timezone.now() + timedelta(seconds=15),
            repeats=1,
            name=f"cleanup-build-{build_id}-{attempt + 1}",
        )
        return
    executor.cleanup(handle(build))


def reap(*, now: datetime | None = None) -> dict[str, int]:
    """Fail builds whose launcher stopped renewing its lease (or queue them again while their
    job's `screwdriver.cd/retries` allows); requeue lost starts."""
    now = now or timezone.now()
    failed = retried = 0
    for build in Build.objects.with_lapsed_lease(now).only(
        "id", "lease_expires_at", "executor", "executor_state", "status"
    ):
        if _launcher_still_running(build):
            # It could not reach the API (a restart, an outage): it reports when it can, and
            # the timeout sweep below still ends a launcher that never does.
            continue
        lapsed_at = build.lease_expires_at
        message = (
            "The build was lost: it stopped reporting and its launcher is gone (last heard of "
            f"before {lapsed_at:%Y-%m-%d %H:%M:%S} UTC; the process or the machine running it "
            "died), so it was marked failed."
        )
        if build_services.retry_lost_build(build_id=build.pk, message=message):
            retried += 1
        elif build_services.fail_lost_build(build_id=build.pk, message=message):
            failed += 1
    overdue = 0
    for build in Build.objects.filter(status=BuildStatus.RUNNING, start_time__isnull=False):
        started = build.start_time
        if started and started + timedelta(seconds=build.timeout_seconds) + TIMEOUT_GRACE < now:
            minutes = build.timeout_seconds / 60
            if build_services.fail_lost_build(
                build_id=build.pk,
                message=(
                    f"Build timed out after {minutes:g} minutes and its launcher did not end it."
                ),
            ):
                overdue += 1
    # A build blocked by a running build of its job (blockedBySameJob: false) may start once
    # that one has run for blockedBySameJobWaitTime, which no build's end announces.
    build_services.release_after_waits()
    # Engines may know a build is dead before its lease says so (an image that cannot be pulled).
    swept, swept_retried = _sweep_engines(now)
    failed += swept
    retried += swept_retried
    requeued = 0
    stale = Build.objects.filter(
        status=BuildStatus.QUEUED, dispatched_at__isnull=True, created_at__lt=now - REQUEUE_AFTER
    ).values_list("pk", flat=True)
    for build_id in stale:
        async_task(build_services.START_TASK, build_id)
        requeued += 1
    return {"failed": failed, "overdue": overdue, "requeued": requeued, "retried": retried}


def _launcher_still_running(build: Build) -> bool:
    if not build.executor_state or not build.executor:
        return False
    try:
        return get_executor(build.executor).launcher_alive(handle(build))
    except Exception as exc:
        # An engine that cannot answer (its API down, its library missing) must not stop the
        # reaper: the lease alone decides, as before this question was asked.
        logger.warning("Cannot tell whether build %s still runs: %s", build.pk, exc)
        return False


def _sweep_engines(now: datetime) -> tuple[int, int]:
    """Let each engine in use remove what finished builds left and report dead builds.

    Returns how many dead builds failed and how many were queued again (retries)."""
    recent = Build.objects.filter(
        Q(end_time__isnull=True) | Q(end_time__gte=now - CLEANUP_PATIENCE)
    )
    names = set(recent.values_list("executor", flat=True).distinct()) | {settings.SD_EXECUTOR}
    names.discard("local")  # local processes end with their launcher; cleanup handles them
    keep = set(recent.values_list("pk", flat=True))
    failed = retried = 0
    for name in sorted(names):
        active = set(
            Build.objects.filter(
                executor=name, status__in=[BuildStatus.QUEUED, BuildStatus.RUNNING]
            )
            .exclude(dispatched_at__isnull=True)
            .values_list("pk", flat=True)
        )
        try:
            verdicts = get_executor(name).sweep(active=active, keep=keep)
        except ExecutorError as exc:
            logger.warning("The %s engine could not be swept: %s", name, exc.message)
            continue
        for build_id, message in verdicts.items():
            if build_services.retry_lost_build(build_id=build_id, message=message):
                retried += 1
            elif build_services.fail_lost_build(build_id=build_id, message=message):
                failed += 1
    return failed, retried


def launch_request(build: Build, *, token: str) -> LaunchRequest:
    """What an engine needs to start `build`'s launcher, which reports with `token`."""
    config = build.job_config()
    return LaunchRequest(
        build_id=build.pk,
        pipeline_id=build.job.pipeline_id,
        job_name=build.job.name,
        image=str(config.get("image") or "").strip(),
        annotations=config.get("annotations") or {},
        timeout_seconds=build.timeout_seconds,
        api_url=settings.SD_API_URL,
        token=token,
    )


def handle(build: Build) -> BuildHandle:
    """`build` as its engine finds it again."""
    return BuildHandle(build_id=build.pk, state=build.executor_state)

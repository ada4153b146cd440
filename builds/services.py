"""Every change of a build's state: creation, transitions, completion and what it triggers.

Only this module changes `Build.status`. Each transition is a conditional UPDATE that names
the statuses it may leave, and checks the row count, so two writers can never both win.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from builds import freeze, live
from builds.models import ACTIVE_STATUSES, Build, BuildQuerySet, BuildStatus, StageBuild, Step
from pipelines import workflow
from pipelines.models import Event, Job, Pipeline, Stage, Trigger
from scm.statuses import enqueue_commit_status

logger = logging.getLogger(__name__)

TIMEOUT_ANNOTATION = "screwdriver.cd/timeout"
SETUP_STEP = "sd-setup-scm"
# A started launcher has this long to report RUNNING before the reaper gives up on it.
START_GRACE = timedelta(seconds=60)
SKIP_FURTHER = "[skip further]"
BLOCKED_BY_SAME_JOB = "screwdriver.cd/blockedBySameJob"
COLLAPSE_BUILDS = "screwdriver.cd/collapseBuilds"
# How far back a restart looks for the results of the jobs it does not run itself.
MAX_INHERITED_EVENTS = 50

EVENT_STATUS_OF_BUILD = {
    BuildStatus.ABORTED: Event.Status.ABORTED,
    BuildStatus.CREATED: None,
    BuildStatus.FAILURE: Event.Status.FAILURE,
    BuildStatus.QUEUED: Event.Status.IN_PROGRESS,
    BuildStatus.RUNNING: Event.Status.IN_PROGRESS,
    BuildStatus.SUCCESS: Event.Status.SUCCESS,
    BuildStatus.BLOCKED: Event.Status.IN_PROGRESS,
    BuildStatus.UNSTABLE: Event.Status.SUCCESS,
    # Decides only when nothing else does: see refresh_event_status.
    BuildStatus.COLLAPSED: None,
    BuildStatus.FROZEN: Event.Status.IN_PROGRESS,
}


_FAILED = frozenset({BuildStatus.FAILURE, BuildStatus.ABORTED, BuildStatus.COLLAPSED})
_SUCCEEDED = frozenset({BuildStatus.SUCCESS, BuildStatus.UNSTABLE})


class TransitionError(Exception):
    """The build is not in a status from which this change is allowed."""

    def __init__(self, build_id: int, target: str, current: str | None) -> None:
        self.current = current
        super().__init__(f"Build {build_id} cannot become {target}: it is {current or 'gone'}.")


# --- creation -----------------------------------------------------------------------------


def timeout_seconds_of(annotations: dict[str, Any]) -> float:
    """Minutes from `screwdriver.cd/timeout` (default and cap from settings), in seconds."""
    raw = annotations.get(TIMEOUT_ANNOTATION)
    minutes = settings.SD_DEFAULT_TIMEOUT_MINUTES
    if raw is not None:
        try:
            minutes = float(raw)
        except (TypeError, ValueError):
            minutes = settings.SD_DEFAULT_TIMEOUT_MINUTES
    if minutes <= 0:
        minutes = settings.SD_DEFAULT_TIMEOUT_MINUTES
    return min(minutes, settings.SD_MAX_TIMEOUT_MINUTES) * 60


def skips_checkout(config: dict[str, Any]) -> bool:
    """Screwdriver's SD_SKIP_REPOSITORY_CLONE: a job that needs no source (the parse-error job)."""
    return (
        str((config.get("environment") or {}).get("SD_SKIP_REPOSITORY_CLONE", "")).lower() == "true"
    )


def _next_number() -> int:
    # Screwdriver numbers builds by their creation time in milliseconds.
    return int(time.time() * 1000)


def create_build(
    *,
    event: Event,
    job: Job,
    status: BuildStatus = BuildStatus.QUEUED,
    cause: str = "",
    parent_build: Build | None = None,
    parent_builds: dict[str, Any] | None = None,
    permutation: int = 0,
) -> Build:
    """Create a build of one job permutation, with its steps, from the event's config."""
    permutations = event.job_configs.get(job.name) or job.permutations
    config: dict[str, Any] = permutations[permutation] if permutations else {}
    build = Build.objects.create(
        job=job,
        event=event,
        permutation=permutation,
        parent_build=parent_build,
        parent_builds=parent_builds or {},
        number=_next_number(),
        cause=cause[:512],
        sha=event.sha,
        container=str(config.get("image", ""))[:256],
        status=status,
        environment=config.get("environment") or {},
        timeout_seconds=timeout_seconds_of(config.get("annotations") or {}),
    )
    setup = [] if skips_checkout(config) else [(SETUP_STEP, "")]
    commands = setup + [
        (str(c.get("name", "")), str(c.get("command", ""))) for c in config.get("commands", [])
    ]
    Step.objects.bulk_create(
        Step(build=build, position=i, name=name[:64], command=command)
        for i, (name, command) in enumerate(commands)
    )
    return build


def create_start_builds(*, event: Event, job_names: Iterable[str], cause: str) -> list[Build]:
    """Queue the first builds of a new event and hand them to the workers after commit."""
    jobs = {
        j.name: j
        for j in Job.objects.filter(pipeline_id=event.pipeline_id, name__in=list(job_names))
    }
    builds: list[Build] = []
    for name in job_names:
        job = jobs.get(name)
        if job is None or job.archived or job.state == Job.State.DISABLED:
            continue
        builds.extend(
            create_build(event=event, job=job, cause=cause, permutation=i)
            for i in range(permutation_count(event, job))
        )
    _open_stage_builds(event, builds)
    _dispatch(_settle_virtual(event, builds))
    return builds


def _settle_virtual(event: Event, builds: list[Build]) -> list[int]:
    # Screwdriver never runs a virtual job: its build succeeds at once and the next jobs start.
    # Returns the ids of the builds that do need a worker.
    to_run = []
    for build in builds:
        if build.status != BuildStatus.QUEUED or not workflow.is_virtual(
            event.workflow_graph, build.job.name
        ):
            to_run.append(build.pk)
            continue
        now = timezone.now()
        _transition(
            build.pk,
            allowed=[BuildStatus.QUEUED],
            target=BuildStatus.SUCCESS,
            start_time=now,
            end_time=now,
            status_message="Virtual job: succeeded without running.",
        )
        Step.objects.filter(build=build).delete()
        build.status = BuildStatus.SUCCESS
        _after_finish(build, cleanup=False)
    return _hold_blocked(event, to_run)


# --- blockedBy, blocked by the same job, collapsed builds ----------------------------------


def _annotation_on(config: dict[str, Any], name: str) -> bool:
    # Screwdriver's blocking annotations default to on; only an explicit false turns them off.
    return str((config.get("annotations") or {}).get(name, True)).lower() not in {"false", "0"}


def _config_of(build: Build) -> dict[str, Any]:
    permutations = build.event.job_configs.get(build.job.name) or build.job.permutations
    return permutations[build.permutation] if len(permutations) > build.permutation else {}


def _blockers(build: Build) -> BuildQuerySet:
    """The other active builds that keep ``build`` from running now."""
    config = _config_of(build)
    declared = [str(name) for name in config.get("blockedBy") or []]
    names = {name.lstrip("~") for name in declared if workflow.is_job_node(name.lstrip("~"))}
    same_job = _annotation_on(config, BLOCKED_BY_SAME_JOB)
    if same_job:
        names.add(build.job.name)
    which = Q(job__pipeline_id=build.job.pipeline_id, job__name__in=names)
    for name in declared:
        remote = workflow.remote_job(name)
        if remote is not None:
            which |= Q(job__pipeline_id=remote.pipeline_id, job__name=remote.job)
    # Permutations of one job in one event run side by side; they never block each other.
    return (
        Build.objects.filter(which, status__in=[BuildStatus.QUEUED, BuildStatus.RUNNING])
        .exclude(pk=build.pk)
        .exclude(event_id=build.event_id, job_id=build.job_id)
    )


def _lock_pipeline(pipeline_id: int) -> None:
    # Blocking decisions of every event of a pipeline are taken one at a time.
    Pipeline.objects.select_for_update().filter(pk=pipeline_id).values_list("pk").first()


def _lock_pipeline_of(build_id: int) -> None:
    # Lock order everywhere: the pipeline, then the build, then its event; a build that ends
    # may release BLOCKED builds of other events, which takes the pipeline's lock anyway.
    pipeline_id = Build.objects.filter(pk=build_id).values_list("job__pipeline_id", flat=True)
    first = pipeline_id.first()
    if first is not None:
        _lock_pipeline(first)


def _hold_blocked(event: Event, build_ids: list[int]) -> list[int]:
    # A new QUEUED build whose blockers are active waits as BLOCKED; returns those that may run.
    if not build_ids:
        return []
    _lock_pipeline(event.pipeline_id)
    build_ids = freeze.hold_frozen(build_ids)
    to_run = []
    for build in Build.objects.filter(pk__in=build_ids).select_related("job", "event"):
        if build.status != BuildStatus.QUEUED or not _blockers(build).exists():
            to_run.append(build.pk)
            continue
        _transition(build.pk, allowed=[BuildStatus.QUEUED], target=BuildStatus.BLOCKED)
        if _annotation_on(_config_of(build), COLLAPSE_BUILDS):
            _collapse_older(build)
    return sorted(to_run)


def _collapse_older(build: Build) -> None:
    # Only the newest waiting build of a job runs; the older waiting ones become COLLAPSED.
    older = list(
        Build.objects.filter(job_id=build.job_id, status=BuildStatus.BLOCKED, pk__lt=build.pk)
        .exclude(event_id=build.event_id)
        .select_related("event", "job")
    )
    for old in older:
        collapsed = Build.objects.filter(pk=old.pk, status=BuildStatus.BLOCKED).update(
            status=BuildStatus.COLLAPSED,
            end_time=timezone.now(),
            status_message=f"Collapsed into build {build.pk} of a newer event.",
        )
        if collapsed:
            _drop_waiting_joins(old, old.event)
            refresh_event_status(event=old.event)


def _release_blocked(pipeline_id: int) -> None:
    # A build left QUEUED/RUNNING: the builds it blocked may run now, oldest first.
    _lock_pipeline(pipeline_id)
    released = []
    waiting = Build.objects.filter(job__pipeline_id=pipeline_id, status=BuildStatus.BLOCKED)
    for build in waiting.select_related("job", "event").order_by("pk"):
        if _blockers(build).exists():
            continue
        if Build.objects.filter(pk=build.pk, status=BuildStatus.BLOCKED).update(
            status=BuildStatus.QUEUED
        ):
            released.append(build.pk)
            live.publish_build(build_id=build.pk)
    _dispatch(freeze.hold_frozen(released))


def permutation_count(event: Event, job: Job) -> int:
    """How many builds one run of ``job`` makes in ``event``: one per matrix permutation."""
    return max(1, len(event.job_configs.get(job.name) or job.permutations or []))


# --- transitions from the launcher ---------------------------------------------------------


def _transition(build_id: int, *, allowed: Iterable[str], target: str, **fields: Any) -> None:
    updated = Build.objects.filter(pk=build_id, status__in=list(allowed)).update(
        status=target, **fields
    )
    if updated != 1:
        current = Build.objects.filter(pk=build_id).values_list("status", flat=True).first()
        raise TransitionError(build_id, target, current)


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.SD_BUILD_LEASE_SECONDS)


@transaction.atomic
def mark_running(*, build_id: int) -> Build:
    """The launcher has started: QUEUED becomes RUNNING and the lease starts."""
    now = timezone.now()
    _transition(
        build_id,
        allowed=[BuildStatus.QUEUED],
        target=BuildStatus.RUNNING,
        start_time=now,
        lease_expires_at=_lease_until(now),
    )
    build = Build.objects.select_related("event").get(pk=build_id)
    refresh_event_status(event=build.event)
    enqueue_commit_status(build_id=build_id)
    live.publish_build(build_id=build_id)
    return build


def renew_lease(*, build_id: int) -> str:
    """Extend the lease of an active build; return its status so the launcher can stop."""
    now = timezone.now()
    Build.objects.filter(pk=build_id, status__in=[BuildStatus.QUEUED, BuildStatus.RUNNING]).update(
        lease_expires_at=_lease_until(now)
    )
    status = Build.objects.filter(pk=build_id).values_list("status", flat=True).first()
    return status or BuildStatus.ABORTED


@transaction.atomic
def finish_build(
    *,
    build_id: int,
    status: str,
    meta: dict[str, Any] | None = None,
    message: str = "",
    allowed: Iterable[str] = (BuildStatus.RUNNING,),
) -> Build:
    """A build ended: record it, merge its meta into the event, and start what comes next."""
    if status not in {BuildStatus.SUCCESS, BuildStatus.FAILURE, BuildStatus.UNSTABLE}:
        raise ValueError(f"{status} is not a final status a build can report.")
    fields: dict[str, Any] = {
        "end_time": timezone.now(),
        "status_message": message[:1024],
        "lease_expires_at": None,
    }
    if meta is not None:
        fields["meta"] = meta
    _lock_pipeline_of(build_id)
    _transition(build_id, allowed=allowed, target=status, **fields)
    build = Build.objects.select_related("job", "event").get(pk=build_id)
    _after_finish(build)
    enqueue_commit_status(build_id=build_id)
    live.publish_build(build_id=build_id)
    return build


@transaction.atomic
def abort_build(*, build_id: int, message: str) -> Build:
    """Stop a build: it becomes ABORTED now; its launcher is told to stop after commit."""
    _lock_pipeline_of(build_id)
    _transition(
        build_id,
        allowed=[BuildStatus.CREATED, *ACTIVE_STATUSES],
        target=BuildStatus.ABORTED,
        end_time=timezone.now(),
        status_message=message[:1024],
        lease_expires_at=None,
    )
    build = Build.objects.select_related("job", "event").get(pk=build_id)
    _after_finish(build)
    enqueue_commit_status(build_id=build_id)
    live.publish_build(build_id=build_id)
    from executors.services import enqueue_stop

    enqueue_stop(build.pk)
    return build


def stop_event(*, event: Event, message: str) -> None:
    """Abort every active build of an event and drop the joins that were waiting."""
    for build_id in Build.objects.filter(event=event).active().values_list("pk", flat=True):
        try:
            abort_build(build_id=build_id, message=message)
        except TransitionError:
            continue  # it finished meanwhile: nothing to stop
    with transaction.atomic():
        Build.objects.filter(event=event, status=BuildStatus.CREATED).delete()
        refresh_event_status(event=Event.objects.select_for_update().get(pk=event.pk))


@transaction.atomic
def fail_lost_build(*, build_id: int, message: str) -> Build | None:
    """The reaper's verdict on a build whose launcher stopped reporting."""
    try:
        return finish_build(
            build_id=build_id,
            status=BuildStatus.FAILURE,
            message=message,
            allowed=[BuildStatus.QUEUED, BuildStatus.RUNNING],
        )
    except TransitionError:
        return None


def update_step(*, step: Step, **fields: Any) -> Step:
    """Record a step's start, end or exit code as its launcher reports them."""
    for attr, value in fields.items():
        setattr(step, attr, value)
    step.save(update_fields=list(fields))
    # The build page shows step starts, exit codes and durations as they happen.
    live.publish_build(build_id=step.build_id)
    return step


# --- completion: meta, next jobs, joins ----------------------------------------------------


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _after_finish(build: Build, *, cleanup: bool = True) -> None:
    # Joins are decided under the event's lock, re-reading the parents from the database, so
    # two parents finishing at once see each other and exactly one of them queues the join.
    event = Event.objects.select_for_update().get(pk=build.event_id)
    if build.meta:
        event.meta = deep_merge(event.meta, build.meta)
        event.save(update_fields=["meta"])
    if build.status in {BuildStatus.SUCCESS, BuildStatus.UNSTABLE}:
        _trigger_next(build, event)
    else:
        _drop_waiting_joins(build, event)
    _settle_stage(build, event)
    refresh_event_status(event=event)
    _release_blocked(event.pipeline_id)
    # Other pipelines' events start after this commit, so no lock of this pipeline is held
    # while theirs are taken and their repositories read.
    transaction.on_commit(partial(_notify_remote_safely, build.pk))
    if cleanup:
        from executors.services import enqueue_cleanup

        enqueue_cleanup(build.pk)


def _parent_builds_entry(event: Event, builds: Mapping[str, Build | None]) -> dict[str, Any]:
    # Screwdriver's shape: one entry per pipeline; a remote parent sits under its own pipeline.
    entry: dict[str, Any] = {str(event.pipeline_id): {"eventId": event.pk, "jobs": {}}}
    for name, b in builds.items():
        remote = workflow.remote_job(name)
        if remote is None:
            entry[str(event.pipeline_id)]["jobs"][name] = b.pk if b else None
            continue
        known = (event.parent_builds or {}).get(str(remote.pipeline_id)) or {}
        slot = entry.setdefault(
            str(remote.pipeline_id),
            {"eventId": b.event_id if b else known.get("eventId"), "jobs": {}},
        )
        slot["jobs"][remote.job] = b.pk if b else (known.get("jobs") or {}).get(remote.job)
    return entry


def _next_jobs(event: Event, job_name: str) -> list[workflow.NextJob]:
    # A job missing from the event's graph (say, the fallback job of a broken file) has
    # nothing after it.
    try:
        return workflow.next_jobs(event.workflow_graph, job_name)
    except ValueError:
        return []


def _job_outcome(builds: list[Build], expected: int) -> str | None:
    # A job succeeded once every permutation did; one failed permutation fails the job.
    if any(b.status in _FAILED for b in builds):
        return BuildStatus.FAILURE
    if len(builds) >= expected and all(b.status in _SUCCEEDED for b in builds):
        return BuildStatus.SUCCESS
    return None


def skips_further(event: Event) -> bool:
    """Whether ``[skip further]`` in the cause or commit message stops after the first jobs."""
    # A restart is asked for by a person: only its own cause message counts, not the commit's.
    commit = "" if event.parent_event_id else str((event.commit or {}).get("message", ""))
    return SKIP_FURTHER in f"{event.cause_message}\n{commit}".lower()


def _trigger_next(build: Build, event: Event, finished: str | None = None) -> None:
    # ``finished`` names the node that ended when it is not the build's own job: a remote job
    # (`sd@ID:job`) whose build, in another pipeline, is one parent of a join here.
    finished = finished or build.job.name
    nexts = _next_jobs(event, finished)
    if not nexts or skips_further(event):
        return
    if workflow.is_stage_teardown(finished) and _stage_failed(event, finished):
        # What follows a stage runs only when the stage succeeded; joins on it never will.
        _drop_waiting_joins(build, event, finished)
        return
    names = {n.name for n in nexts} | {p for n in nexts for p in n.parents} | {finished}
    jobs = {j.name: j for j in Job.objects.filter(pipeline_id=event.pipeline_id, name__in=names)}
    by_job: dict[str, list[Build]] = {}
    for b in (
        Build.objects.filter(event=event, job__name__in=names)
        .select_related("job")
        .order_by("permutation")
    ):
        by_job.setdefault(b.job.name, []).append(b)

    def outcome(name: str) -> str | None:
        remote = workflow.remote_job(name)
        if remote is not None:
            return _remote_outcome(event, remote)
        job = jobs.get(name)
        expected = permutation_count(event, job) if job is not None else 1
        if name not in by_job and name not in will_run:
            # A restart counts the earlier events' result of a job it will not run itself.
            by_job[name] = _inherited_builds(event, name)
        return _job_outcome(by_job.get(name, []), expected)

    will_run = (
        workflow.downstream(event.workflow_graph, event.start_from)
        if event.parent_event_id
        else set()
    )
    own = outcome(finished)
    if own is None:
        return  # other permutations of this job are still running
    if own != BuildStatus.SUCCESS:
        _drop_waiting_joins(build, event, finished)
        return
    to_start: list[Build] = []
    for nxt in nexts:
        job = jobs.get(nxt.name)
        if job is None or job.archived or job.state == Job.State.DISABLED:
            continue
        current = by_job.get(nxt.name, [])
        if not nxt.join:
            if not current:
                to_start += _create_permutations(
                    event=event,
                    job=job,
                    status=BuildStatus.QUEUED,
                    cause=f"Triggered by {finished}",
                    parent_build=build,
                    parent_builds=_parent_builds_entry(event, {finished: build}),
                )
            continue
        outcomes = {name: outcome(name) for name in nxt.parents}
        outcomes[finished] = own
        if any(o == BuildStatus.FAILURE for o in outcomes.values()):
            for waiting in current:
                _delete_if_waiting(waiting)
            continue
        ready = all(o == BuildStatus.SUCCESS for o in outcomes.values())
        parents: dict[str, Build | None] = {
            name: (by_job[name][-1] if by_job.get(name) else None) for name in nxt.parents
        }
        parents[finished] = build
        parent_builds = _parent_builds_entry(event, parents)
        if not current:
            created = _create_permutations(
                event=event,
                job=job,
                status=BuildStatus.QUEUED if ready else BuildStatus.CREATED,
                cause=f"Triggered by {', '.join(sorted(parents))}",
                parent_build=build,
                parent_builds=parent_builds,
            )
            if ready:
                to_start += created
        elif ready:
            waiting_ids = [b.pk for b in current if b.status == BuildStatus.CREATED]
            promoted = Build.objects.filter(pk__in=waiting_ids, status=BuildStatus.CREATED)
            if promoted.update(
                status=BuildStatus.QUEUED, parent_build=build, parent_builds=parent_builds
            ):
                for waiting in current:
                    if waiting.pk in waiting_ids:
                        waiting.status = BuildStatus.QUEUED
                        to_start.append(waiting)
    _open_stage_builds(event, to_start)
    # Virtual jobs settle after every decision above, so the snapshot stays true meanwhile.
    _dispatch(_settle_virtual(event, to_start))


def _inherited_builds(event: Event, job_name: str) -> list[Build]:
    # The nearest ancestor event (restart of a restart...) that has builds of the job.
    ancestor_id = event.parent_event_id
    for _ in range(MAX_INHERITED_EVENTS):
        if ancestor_id is None:
            break
        found = list(
            Build.objects.filter(event_id=ancestor_id, job__name=job_name)
            .select_related("job")
            .order_by("permutation")
        )
        if found:
            return found
        ancestor_id = (
            Event.objects.filter(pk=ancestor_id).values_list("parent_event_id", flat=True).first()
        )
    return []


def _create_permutations(*, event: Event, job: Job, **kwargs: Any) -> list[Build]:
    # Every permutation of a matrix job is its own build; all share the trigger's parents.
    created = (
        _create_once(event=event, job=job, permutation=i, **kwargs)
        for i in range(permutation_count(event, job))
    )
    return [b for b in created if b is not None]


def _create_once(**kwargs: Any) -> Build | None:
    # The unique constraint (event, job, permutation) is the last word on "exactly once".
    try:
        with transaction.atomic():
            return create_build(**kwargs)
    except IntegrityError:
        return None


def _delete_if_waiting(build: Build | None) -> None:
    if build is not None:
        Build.objects.filter(pk=build.pk, status=BuildStatus.CREATED).delete()


def _drop_waiting_joins(build: Build, event: Event, finished: str | None = None) -> None:
    # A failed parent means its joins can never run: remove the builds that waited for it.
    joins = [n.name for n in _next_jobs(event, finished or build.job.name) if n.join]
    if joins:
        Build.objects.filter(event=event, job__name__in=joins, status=BuildStatus.CREATED).delete()


# --- stages: stage builds, teardown after a failure ----------------------------------------


def _open_stage_builds(event: Event, builds: Iterable[Build]) -> None:
    # A stage build starts with the first of its jobs' builds that is about to run.
    names = {
        workflow.stage_of(event.workflow_graph, b.job.name)
        for b in builds
        if b.status != BuildStatus.CREATED
    }
    names.discard(None)
    if not names:
        return
    for stage in Stage.objects.filter(pipeline_id=event.pipeline_id, name__in=names):
        StageBuild.objects.get_or_create(
            stage=stage,
            event=event,
            defaults={
                "status": BuildStatus.RUNNING,
                "workflow_graph": workflow.stage_graph(event.workflow_graph, stage.name),
            },
        )


def _stage_members(graph: dict[str, Any], stage: str) -> list[str]:
    # The jobs whose failure fails the stage: its own jobs and its setup, not its teardown.
    return [*workflow.stage_jobs(graph, stage), workflow.stage_setup(stage)]


def _stage_failed(event: Event, job_name: str) -> bool:
    """Whether a job of the stage ``job_name`` belongs to did not succeed in ``event``."""
    stage = workflow.stage_of(event.workflow_graph, job_name)
    if stage is None:
        return False
    return Build.objects.filter(
        event=event,
        job__name__in=_stage_members(event.workflow_graph, stage),
        status__in=list(_FAILED),
    ).exists()


def _settle_stage(build: Build, event: Event) -> None:
    # The stage build follows its jobs; a failed stage job still gets the stage's teardown,
    # once nothing else of the stage runs, and what follows the teardown does not run.
    name = build.job.name
    stage = workflow.stage_of(event.workflow_graph, name)
    if stage is None:
        return
    stage_builds = StageBuild.objects.filter(
        event=event, stage__pipeline_id=event.pipeline_id, stage__name=stage
    )
    teardown = workflow.stage_teardown(stage)
    failed = _stage_failed(event, teardown)
    if name == teardown:
        ended = _job_outcome(
            list(Build.objects.filter(event=event, job_id=build.job_id)),
            permutation_count(event, build.job),
        )
        if ended is not None:
            ok = ended == BuildStatus.SUCCESS and not failed
            stage_builds.update(status=BuildStatus.SUCCESS if ok else BuildStatus.FAILURE)
        return
    if not failed:
        return
    stage_builds.update(status=BuildStatus.FAILURE)
    members = _stage_members(event.workflow_graph, stage)
    if Build.objects.filter(event=event, job__name__in=members).active().exists():
        return  # the teardown waits for the stage's other jobs to end
    existing = list(Build.objects.filter(event=event, job__name=teardown))
    if any(b.status != BuildStatus.CREATED for b in existing):
        return
    for waiting in existing:
        _delete_if_waiting(waiting)
    job = Job.objects.filter(pipeline_id=event.pipeline_id, name=teardown).first()
    if job is None or job.archived or job.state == Job.State.DISABLED:
        return
    culprit = (
        Build.objects.filter(event=event, job__name__in=members, status__in=list(_FAILED))
        .select_related("job")
        .order_by("pk")
        .first()
    ) or build
    created = _create_permutations(
        event=event,
        job=job,
        status=BuildStatus.QUEUED,
        cause=f"Teardown of stage {stage}: {culprit.job.name} did not succeed",
        parent_build=culprit,
        parent_builds=_parent_builds_entry(event, {culprit.job.name: culprit}),
    )
    _dispatch(_settle_virtual(event, created))


# --- remote triggers and joins (`~sd@ID:job`, `sd@ID:job`) ---------------------------------

# How many remote hops back a new remote event looks for its own pipeline (a trigger loop).
MAX_REMOTE_CHAIN = 50


def _remote_outcome(event: Event, remote: workflow.RemoteJob) -> str | None:
    # The remote job's build this event heard of (what started it, or a join's arrival).
    known = ((event.parent_builds or {}).get(str(remote.pipeline_id)) or {}).get("jobs") or {}
    build_id = known.get(remote.job)
    if build_id is None:
        return None
    status = Build.objects.filter(pk=build_id).values_list("status", flat=True).first()
    if status in _SUCCEEDED:
        return BuildStatus.SUCCESS
    if status is None or status in _FAILED:
        return BuildStatus.FAILURE
    return None


def _notify_remote_safely(build_id: int) -> None:
    # Runs after the build's own commit: a failure here must not undo or fail that report.
    try:
        trigger_remote_jobs(build_id=build_id)
        release_remotely_blocked(build_id=build_id)
    except Exception:
        logger.exception("Remote triggers of build %s failed", build_id)


def release_remotely_blocked(*, build_id: int) -> None:
    """Let other pipelines' BLOCKED builds run if this build was what blocked them."""
    # Waiting builds are few, and blockedBy has no table of its own: look at the pipelines
    # that have any, each under its own lock, as a build ending there would.
    pipeline_id = Build.objects.filter(pk=build_id).values_list("job__pipeline_id", flat=True)
    others = (
        Build.objects.filter(status=BuildStatus.BLOCKED)
        .exclude(job__pipeline_id__in=pipeline_id)
        .values_list("job__pipeline_id", flat=True)
        .distinct()
    )
    for other in list(others):
        with transaction.atomic():
            _release_blocked(other)


def trigger_remote_jobs(*, build_id: int) -> list[Event]:
    """Start or join the other pipelines' jobs that require this build's job."""
    build = Build.objects.select_related("job", "event").filter(pk=build_id).first()
    if build is None:
        return []
    source = f"sd@{build.job.pipeline_id}:{build.job.name}"
    triggers = list(
        Trigger.objects.filter(src__in=[f"~{source}", source]).select_related("pipeline")
    )
    if not triggers or skips_further(build.event):
        return []
    siblings = list(Build.objects.filter(event_id=build.event_id, job_id=build.job_id))
    outcome = _job_outcome(siblings, permutation_count(build.event, build.job))
    if outcome is None:
        return []  # other permutations of the job are still running
    if outcome != BuildStatus.SUCCESS:
        build = next((b for b in siblings if b.status in _FAILED), build)
    started: list[Event] = []
    started_in: set[int] = set()
    for trigger in triggers:
        dest = workflow.remote_job(trigger.dest)
        if dest is None:
            continue
        if dest.join:
            _remote_join_arrived(trigger.pipeline, dest.job, build, source, outcome)
        elif outcome == BuildStatus.SUCCESS and trigger.pipeline_id not in started_in:
            # One event per pipeline starts every job there that requires this one.
            started_in.add(trigger.pipeline_id)
            event = _start_remote_event(trigger.pipeline, trigger.src, build)
            if event is not None:
                started.append(event)
    return started


def _remote_chain(event: Event) -> set[int]:
    # The pipelines of this event and of the events whose builds started it, remote hop by hop.
    seen = {event.pipeline_id}
    parent = event.parent_build_id
    for _ in range(MAX_REMOTE_CHAIN):
        if parent is None:
            break
        row = (
            Build.objects.filter(pk=parent)
            .values_list("event__pipeline_id", "event__parent_build_id")
            .first()
        )
        if row is None:
            break
        seen.add(row[0])
        parent = row[1]
    return seen


def _start_remote_event(pipeline: Pipeline, src: str, build: Build) -> Event | None:
    from pipelines.services.events import Creator, start_event
    from pipelines.services.pipelines import PipelineError

    if pipeline.state != Pipeline.State.ACTIVE:
        logger.info("Pipeline %s is %s: %s does not start it", pipeline.pk, pipeline.state, src)
        return None
    if pipeline.pk in _remote_chain(build.event):
        logger.warning("Remote trigger loop: %s would start pipeline %s again", src, pipeline.pk)
        return None
    entry = {
        str(build.job.pipeline_id): {"eventId": build.event_id, "jobs": {build.job.name: build.pk}}
    }
    creator = build.event.creator or {}
    try:
        with transaction.atomic():
            _lock_pipeline(pipeline.pk)
            already = Event.objects.filter(
                pipeline=pipeline,
                parent_build__event_id=build.event_id,
                parent_build__job_id=build.job_id,
            )
            if already.exists():
                return None  # another permutation's report got here first
            event = start_event(
                pipeline=pipeline,
                start_from=src,
                creator=Creator(
                    name=str(creator.get("name") or "Screwdriver"),
                    username=str(creator.get("username") or "sd:scheduler"),
                ),
                cause_message=f"Triggered by sd@{build.job.pipeline_id}:{build.job.name}",
            )
            Event.objects.filter(pk=event.pk).update(parent_build=build, parent_builds=entry)
            Build.objects.filter(event=event, parent_build__isnull=True).update(
                parent_build=build, parent_builds=entry
            )
    except PipelineError as exc:
        logger.info("%s started nothing in pipeline %s: %s", src, pipeline.pk, exc.message)
        return None
    event.refresh_from_db()
    return event


def _remote_join_arrived(
    pipeline: Pipeline, job_name: str, build: Build, source: str, outcome: str
) -> None:
    # A remote job is one parent of a join in ``pipeline``: it counts in the event that
    # started its own event (a join back), else in the newest event whose join waits for it.
    back = ((build.event.parent_builds or {}).get(str(pipeline.pk)) or {}).get("eventId")
    with transaction.atomic():
        _lock_pipeline(pipeline.pk)
        target = None
        if back is not None:
            target = Event.objects.select_for_update().filter(pk=back, pipeline=pipeline).first()
        if target is None:
            waiting = (
                Build.objects.filter(
                    job__pipeline_id=pipeline.pk, job__name=job_name, status=BuildStatus.CREATED
                )
                .order_by("-event_id")
                .values_list("event_id", flat=True)
                .first()
            )
            if waiting is not None:
                target = Event.objects.select_for_update().get(pk=waiting)
        if target is None:
            return
        heard = {
            str(build.job.pipeline_id): {
                "eventId": build.event_id,
                "jobs": {build.job.name: build.pk},
            }
        }
        target.parent_builds = deep_merge(target.parent_builds or {}, heard)
        target.save(update_fields=["parent_builds"])
        if outcome == BuildStatus.SUCCESS:
            _trigger_next(build, target, source)
        else:
            _drop_waiting_joins(build, target, source)
        refresh_event_status(event=target)


def refresh_event_status(*, event: Event) -> str:
    """Derive the event's status from its builds, as Screwdriver does, and store it."""
    counts = {
        Event.Status.IN_PROGRESS: 0,
        Event.Status.ABORTED: 0,
        Event.Status.FAILURE: 0,
        Event.Status.SUCCESS: 0,
    }
    collapsed = False
    for status in Build.objects.filter(event=event).values_list("status", flat=True):
        mapped = EVENT_STATUS_OF_BUILD.get(BuildStatus(status))
        if mapped:
            counts[mapped] += 1
        collapsed = collapsed or status == BuildStatus.COLLAPSED
    new = next((s for s, n in counts.items() if n), None)
    if new is None and collapsed:
        # Every build gave way to a newer event's: the event did not fail, it stopped short of
        # its jobs, which is what ABORTED says (Screwdriver's events have no COLLAPSED).
        new = Event.Status.ABORTED
    if new and event.status != new:
        Event.objects.filter(pk=event.pk).update(status=new)
        event.status = new
    return event.status


def _dispatch(build_ids: list[int]) -> None:
    if build_ids:
        from executors.services import enqueue_start
        from scm.statuses import enqueue_commit_statuses

        enqueue_start(build_ids)
        # A queued build shows as pending on its commit before any worker picks it up.
        enqueue_commit_statuses(build_ids=build_ids)

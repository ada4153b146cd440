"""Pull requests: their events, restarts, aborts and closing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import transaction

from builds import services as build_services
from builds.models import ACTIVE_STATUSES
from pipelines import source_paths, workflow
from pipelines.models import Event, Job, Pipeline
from pipelines.services.events import (
    Creator,
    commit_json,
    event_of_delivery,
    once_per_delivery,
    start_event,
)
from pipelines.services.pipelines import PipelineError, read_config, scm_for
from scm.base import ScmError

# --- pull requests -------------------------------------------------------------------------


ANNOT_RESTRICT_PR = "screwdriver.cd/restrictPR"
ANNOT_CHAIN_PR = "screwdriver.cd/chainPR"


def pr_job_name(pr_num: int, job: str) -> str:
    """Return Screwdriver's name of a job run for a pull request, PR-<n>:<job>."""
    return f"PR-{pr_num}:{job}"


def pr_restriction(pipeline: Pipeline) -> str:
    """Return which pull requests the pipeline refuses to build: none, all, branch or fork.

    The server's SD_RESTRICT_PR is the default; its "-admin" variants win over the pipeline's
    screwdriver.cd/restrictPR, as Screwdriver's webhooks plugin options do.
    """
    server = str(settings.SD_RESTRICT_PR or "none").strip().lower()
    if server.endswith("-admin"):
        return server
    annotation = (pipeline.annotations or {}).get(ANNOT_RESTRICT_PR)
    return str(annotation).strip().lower() if annotation else server


def restricted_pr_message(*, pipeline: Pipeline, fork: bool) -> str | None:
    """Say why a pull request from a fork (or a branch) must not build here; None if it may."""
    restriction = pr_restriction(pipeline)
    source = "fork" if fork else "branch"
    # Unknown values restrict nothing, as in Screwdriver.
    if restriction.removesuffix("-admin") not in ("all", source):
        return None
    where = (
        "the server's SD_RESTRICT_PR"
        if restriction.endswith("-admin")
        else f"{ANNOT_RESTRICT_PR} in the pipeline's screwdriver.yaml"
    )
    return (
        f"Pipeline {pipeline.pk} does not build pull requests from a {source} "
        f"(restrictPR is {restriction}); nothing was built. To build them, change {where}."
    )


def pr_restart_refusal(*, event: Event, username: str, can_push: bool) -> str | None:
    """Say why this person may not start a pull request's jobs again; None when they may.

    As Screwdriver's POST /events: people with push rights always may; without them, only
    the pull request's own author may, and only where restrictPR restricts nothing.
    """
    if can_push:
        return None
    pipeline = event.pipeline
    restriction = pr_restriction(pipeline)
    name = f"PR-{event.pr_num}"
    if restriction.removesuffix("-admin") != "none":
        return (
            f"Pipeline {pipeline.pk} restricts pull requests (restrictPR is {restriction}): "
            f"only people with push rights may start {name} again; ask one of its admins."
        )
    if username and username == str((event.pr or {}).get("username") or ""):
        return None
    return (
        f"Only the author of {name} or people with push rights on pipeline {pipeline.pk} may "
        "start it again; ask one of its admins."
    )


def changed_files_of_pr(*, pipeline: Pipeline, pr_num: int) -> tuple[list[str] | None, str]:
    """The files a pull request changes against its base (None: unknown), and why unknown."""
    try:
        return scm_for(pipeline).pr_changed_files(pipeline.repo_ref(), pr_num), ""
    except ScmError as exc:
        # Unknown changes run every ~pr job, sourcePaths or not, rather than none.
        return None, (
            f"The files pull request {pr_num} changes are unknown ({exc}), so its ~pr jobs "
            "ran regardless of sourcePaths."
        )


def chains_pr(pipeline: Pipeline) -> bool:
    """Whether the pipeline's PR events run the jobs after the ~pr jobs too (chainPR)."""
    value = (pipeline.annotations or {}).get(ANNOT_CHAIN_PR)
    if value is None:
        return bool(settings.SD_CHAIN_PR)
    return value is True or str(value).strip().lower() == "true"


def pr_graph(graph: dict[str, Any], pr_num: int) -> dict[str, Any]:
    """Return the workflow graph with its jobs named PR-<n>:<job>, triggers and remotes kept.

    A chained PR event stores this graph, so the completion service finds PR-<n>:<next> by
    name after PR-<n>:<job> as it finds <next> after <job> in other events.
    """

    def rename(name: str) -> str:
        return pr_job_name(pr_num, name) if workflow.is_job_node(name) else name

    return {
        **graph,
        "nodes": [{**node, "name": rename(node["name"])} for node in graph.get("nodes", [])],
        "edges": [
            {**edge, "src": rename(edge["src"]), "dest": rename(edge["dest"])}
            for edge in graph.get("edges", [])
        ],
    }


def start_pr_event(
    *,
    pipeline: Pipeline,
    pr_num: int,
    sha: str,
    creator: Creator,
    pr: dict[str, Any],
    cause_message: str = "",
    start_from: str = "~pr",
    parent_event: Event | None = None,
    changed_files: Sequence[str] | None = None,
    delivery_key: str | None = None,
    job_names: Sequence[str] | None = None,
    base_branch: str | None = None,
) -> Event | None:
    """Run the ~pr jobs (or one PR-<n>:<job>, or the PR jobs `job_names`) of the PR's own
    screwdriver.yaml at its sha.

    `base_branch` is the branch the PR is into (default: the pipeline's). Into another branch,
    `~pr` runs the jobs that ask for `~pr:<base>` (by name or regex), as Screwdriver's
    `requires: [~pr:staging]` does on a pipeline of main; the PR is merged into its base.

    `changed_files` (the PR's whole diff against its base; None when unknown) keeps only the
    ~pr jobs whose sourcePaths it touches, as a push does for ~commit jobs. `delivery_key`
    names the webhook delivery that asks: asked again, it gets the same event.
    """
    done = event_of_delivery(pipeline=pipeline, delivery_key=delivery_key)
    if done is not None:
        return done
    if pipeline.state != Pipeline.State.ACTIVE:
        return None
    scm = scm_for(pipeline)
    ref = pipeline.repo_ref()
    base = base_branch or ref.branch
    if start_from == "~pr" and base != ref.branch:
        start_from = f"~pr:{base}"
    # What a pull request itself starts, not a restart of one of its jobs.
    from_trigger = start_from == "~pr" or start_from.startswith("~pr:")
    try:
        commit = scm.commit_info(ref, sha)
    except ScmError as exc:
        raise PipelineError(str(exc), status=422) from exc
    config = read_config(ref, sha)
    graph = config.get("workflowGraph", {})
    errors = list(config.get("errors", []))
    jobs_config: dict[str, list[dict[str, Any]]] = config.get("jobs", {})
    if errors:
        names = list(jobs_config)[:1]
    elif job_names is not None:
        names = [name for name in jobs_config if pr_job_name(pr_num, name) in job_names]
    elif start_from == "~pr":
        names = list(
            dict.fromkeys(
                workflow.start_jobs(graph, "~pr") + workflow.start_jobs(graph, f"~pr:{ref.branch}")
            )
        )
    elif from_trigger:
        names = workflow.start_jobs(graph, start_from)
    else:
        names = [name for name in jobs_config if pr_job_name(pr_num, name) == start_from]
    if not names:
        return None
    meta: dict[str, Any] = {}
    if changed_files is not None:
        meta["commit"] = {"changedFiles": ",".join(changed_files)}
        if from_trigger and not source_paths.touches_root_dir(changed_files, pipeline.root_dir):
            # Before the file is looked at, as Screwdriver picks the pipelines a change is for.
            raise PipelineError(
                f"Pull request {pr_num} changes no file under the root directory "
                f"{pipeline.root_dir} of pipeline {pipeline.pk}, so nothing ran.",
                status=422,
            )
        if from_trigger and not errors:
            names = source_paths.concerned_jobs(
                names, jobs_config, pipeline.root_dir, changed_files
            )
            if not names:
                raise PipelineError(
                    f"No ~pr job of pipeline {pipeline.pk} has a sourcePaths entry that the "
                    f"files pull request {pr_num} changes match, so nothing ran; change a file "
                    "under one, or start the job by hand.",
                    status=422,
                )
    runs = names
    if chains_pr(pipeline) and not errors:
        # chainPR: every job after the first ones runs as a PR job too, in config order.
        reach = set().union(*(workflow.downstream(graph, name) for name in names))
        runs = [name for name in jobs_config if name in reach]
        graph = pr_graph(graph, pr_num)
    pr_configs = {pr_job_name(pr_num, name): jobs_config.get(name, []) for name in runs}

    cause = (cause_message or f"Pull request {pr_num} by {creator.username}")[:512]

    def create() -> Event:
        with transaction.atomic():
            for name, permutations in pr_configs.items():
                Job.objects.update_or_create(
                    pipeline=pipeline,
                    name=name,
                    defaults={"permutations": permutations, "archived": False},
                )
            event = Event.objects.create(
                pipeline=pipeline,
                parent_event=parent_event,
                group_event_id=(parent_event.group_event_id or parent_event.pk)
                if parent_event
                else None,
                type=Event.Type.PR,
                pr_num=pr_num,
                pr=pr,
                cause_message=cause,
                commit=commit_json(commit),
                creator=creator.as_dict(),
                sha=sha,
                meta=meta,
                start_from=start_from,
                restart_jobs=[pr_job_name(pr_num, name) for name in names]
                if job_names is not None
                else [],
                base_branch=base,
                workflow_graph=graph,
                job_configs=pr_configs,
                config_errors=errors,
                status=Event.Status.CREATED,
                delivery_key=delivery_key,
            )
            build_services.create_start_builds(
                event=event,
                job_names=[pr_job_name(pr_num, name) for name in names],
                cause=event.cause_message,
            )
            build_services.refresh_event_status(event=event)
        return event

    return once_per_delivery(pipeline=pipeline, delivery_key=delivery_key, create=create)


def restart_pr(
    *,
    parent_event: Event,
    start_from: str,
    creator: Creator,
    job_names: Sequence[str] | None = None,
) -> Event:
    event = start_pr_event(
        pipeline=parent_event.pipeline,
        pr_num=parent_event.pr_num or 0,
        sha=parent_event.sha,
        creator=creator,
        pr=parent_event.pr,
        start_from=start_from,
        parent_event=parent_event,
        job_names=job_names,
        base_branch=parent_event.base_branch or None,
    )
    if event is None:
        raise PipelineError(f"{start_from} is not a job of this pull request.", status=404)
    return event


def stop_pr_builds(*, pipeline: Pipeline, pr_num: int, message: str) -> int:
    """Abort every active build of a pull request's events; return how many events it stopped."""
    events = Event.objects.filter(pipeline=pipeline, type=Event.Type.PR, pr_num=pr_num)
    stopped = 0
    for event in events.filter(builds__status__in=list(ACTIVE_STATUSES)).distinct():
        build_services.stop_event(event=event, message=message)
        stopped += 1
    return stopped


def close_pr(
    *,
    pipeline: Pipeline,
    pr_num: int,
    creator: Creator,
    delivery_key: str | None = None,
    base_branch: str | None = None,
) -> Event | None:
    """A closed pull request: stop its builds, archive its jobs, run ~pr-closed if asked for
    (``~pr-closed:<base>`` when the PR was into another branch than the pipeline's)."""
    done = event_of_delivery(pipeline=pipeline, delivery_key=delivery_key)
    if done is not None:
        return done
    stop_pr_builds(pipeline=pipeline, pr_num=pr_num, message=f"Pull request {pr_num} was closed")
    Job.objects.filter(pipeline=pipeline, name__startswith=f"PR-{pr_num}:").update(archived=True)
    base = base_branch or pipeline.repo_ref().branch
    trigger = "~pr-closed" if base == pipeline.repo_ref().branch else f"~pr-closed:{base}"
    if not workflow.start_jobs(pipeline.workflow_graph, trigger):
        return None
    return start_event(
        pipeline=pipeline,
        start_from=trigger,
        creator=creator,
        cause_message=f"Pull request {pr_num} closed by {creator.username}",
        delivery_key=delivery_key,
    )

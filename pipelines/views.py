"""Pipeline pages of the UI: home with search, one pipeline with its graph and events, jobs.

Reading needs pull rights (every signed-in person may read a public pipeline); Start, Restart
and Stop need push rights; the settings pages (`views_settings`) need admin rights.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from builds.models import ACTIVE_STATUSES, Build
from builds.services import stop_event
from pipelines import graph_layout, selectors
from pipelines.config import parse_pipeline_yaml
from pipelines.forms import CreatePipelineForm, ParametersForm, RestartForm
from pipelines.models import Collection, Event, Pipeline
from pipelines.services import (
    RESTART_FAILED,
    RESTARTED_STATUSES,
    PipelineError,
    add_to_collection,
    create_collection,
    create_pipeline,
    creator_of,
    delete_collection,
    jobs_started_by_hand,
    manual_start_refusal,
    remove_from_collection,
    restart_event,
    start_all_children,
    start_event,
    sync_child_pipelines,
)
from pipelines.services.pull_requests import pr_restart_refusal
from pipelines.template_store import database_pipeline_templates, database_templates
from scm.rights import expired_sign_in_message, refresh_scm_role
from screwdriver_site.ids import parse_id

PULL, PUSH, ADMIN = 1, 2, 3
# Statuses whose message says what the build waits for ("re-queued at ..."): shown in lists.
WAITING_NOTES = ("FROZEN", "BLOCKED", "COLLAPSED")
HOME_PAGE_SIZE = 50


def signed_in_user(request: HttpRequest) -> User:
    """The signed-in user of a view behind login_required."""
    assert isinstance(request.user, User)
    return request.user


def pipeline_with_rank(
    request: HttpRequest, pipeline_id: int, need: int = PULL
) -> tuple[Pipeline, int]:
    """The pipeline and the user's rank on it; 404 if they may not read it, 403 if not `need`."""
    pipeline = selectors.pipeline_of(pipeline_id)
    refresh_scm_role(user=request.user, pipeline=pipeline)
    expired = expired_sign_in_message(request.user, pipeline.scm_context)
    if expired and request.method == "GET":
        # The SCM refused their token: say why their rights are gone rather than hide it.
        messages.warning(request, expired)
    rank = selectors.role_rank(pipeline, request.user)
    if rank < PULL and not pipeline.is_public:
        # A private pipeline the person cannot read does not exist for them.
        raise Http404("No such pipeline.")
    if rank < need:
        role = {PUSH: "push", ADMIN: "admin"}.get(need, "pull")
        raise PermissionDenied(
            f"You need {role} rights on pipeline {pipeline.pk} for this: ask one of its admins."
        )
    return pipeline, rank


@login_required
@require_http_methods(["GET", "POST"])
def pipeline_list(request: HttpRequest) -> HttpResponse:
    """Readable pipelines, searched and in a collection; POST creates one from a checkout URL."""
    form = CreatePipelineForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                pipeline = create_pipeline(
                    checkout_url=form.cleaned_data["checkoutUrl"].strip(),
                    user=signed_in_user(request),
                    root_dir=form.cleaned_data["rootDir"],
                )
            except PipelineError as exc:
                form.add_error("checkoutUrl", exc.message)
            else:
                sync_child_pipelines(parent=pipeline)
                messages.success(request, f"Pipeline {pipeline.name} created.")
                return redirect("pipelines:detail", pipeline_id=pipeline.pk)
        status = 400
    query = request.GET.get("q", "").strip()[:200]
    user = signed_in_user(request)
    collections = list(Collection.objects.filter(user=user))
    chosen = request.GET.get("collection", "all")
    named = next((c for c in collections if str(c.pk) == chosen), None)
    collection = str(named.pk) if named else ("mine" if chosen == "mine" else "all")
    pipelines = selectors.pipeline_home(
        user, query=query, collection=named if named else collection
    )
    page = Paginator(pipelines, HOME_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "pipelines": page.object_list,
        "form": form,
        "query": query,
        "collection": collection,
        "collections": collections,
        "named_collection": named,
    }
    return render(request, "pipelines/list.html", context, status=status)


@login_required
@require_POST
def collection_create(request: HttpRequest) -> HttpResponse:
    """A new, empty collection of the signed-in person's; its tab opens."""
    name = request.POST.get("name", "").strip()[:128]
    if not name:
        messages.error(request, "Give the collection a name.")
        return redirect("pipelines:list")
    try:
        collection = create_collection(user=signed_in_user(request), name=name)
    except PipelineError as exc:
        messages.error(request, exc.message)
        return redirect("pipelines:list")
    return HttpResponseRedirect(f"{reverse('pipelines:list')}?collection={collection.pk}")


@login_required
@require_POST
def collection_delete(request: HttpRequest, collection_id: int) -> HttpResponse:
    """Delete one of the person's collections (its pipelines stay)."""
    collection = get_object_or_404(Collection, pk=collection_id, user=signed_in_user(request))
    delete_collection(collection=collection)
    messages.success(request, f"Collection {collection.name} deleted.")
    return redirect("pipelines:list")


@login_required
@require_POST
def pipeline_collection(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """Add the pipeline to one of the person's collections, or take it out."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id)
    collection = get_object_or_404(
        Collection, pk=parse_id(request.POST.get("collection")), user=signed_in_user(request)
    )
    if request.POST.get("action") == "remove":
        remove_from_collection(collection=collection, pipeline=pipeline)
        messages.success(request, f"Removed from {collection.name}.")
    else:
        add_to_collection(collection=collection, pipeline=pipeline)
        messages.success(request, f"Added to {collection.name}.")
    return redirect("pipelines:detail", pipeline_id=pipeline.pk)


@login_required
def pipeline_detail(
    request: HttpRequest, pipeline_id: int, event_id: int | None = None
) -> HttpResponse:
    """One pipeline: the selected event's workflow graph, its events, Start and Restart."""
    pipeline, rank = pipeline_with_rank(request, pipeline_id)
    event = selectors.event_of(pipeline, event_id)
    builds = selectors.builds_of_event(event) if event else []
    groups = selectors.group_builds(builds, pipeline.pk)
    stage_builds = selectors.stage_builds_of(event) if event else []
    graph = (event.workflow_graph if event else None) or pipeline.workflow_graph or {}
    events = selectors.event_rows(pipeline, before=parse_id(request.GET.get("before")))
    drawn = graph_layout.layout(
        graph,
        statuses={g.name: g.status for g in groups},
        links={g.name: g.href for g in groups},
        permutations={g.name: g.marks() for g in groups},
        remote_links=selectors.remote_links(request.user, graph),
        stage_statuses={s.stage.name: s.status for s in stage_builds},
        notes={
            g.name: g.build.status_message
            for g in groups
            if not g.is_matrix and g.build.status in WAITING_NOTES
        },
    )
    job_names = [n.name for n in drawn.nodes if n.kind == "job"]
    # From the builds already read: the page's query count stays what it was.
    failed = (
        sorted({b.job.name for b in builds if b.status in RESTARTED_STATUSES})
        if event and not _active(event, builds)
        else []
    )
    if event is not None:
        # A job whose manualStartEnabled is false is not offered to start by hand, nor a
        # restart of failed jobs that include it.
        job_names = jobs_started_by_hand(pipeline=pipeline, names=job_names, event=event)
        if jobs_started_by_hand(pipeline=pipeline, names=failed, event=event) != failed:
            failed = []
    context = {
        "pipeline": pipeline,
        "branch": selectors.branch_of(pipeline),
        "event": event,
        "event_builds": builds,
        "job_builds": groups,
        "waiting_statuses": WAITING_NOTES,
        "stage_builds": stage_builds,
        "upstream": selectors.upstream_of(event, request.user) if event else None,
        "event_message": selectors.first_line(str((event.commit or {}).get("message", "")))
        if event
        else "",
        "event_active": bool(event and _active(event, builds)),
        "failed_jobs": failed,
        "restart_failed": RESTART_FAILED,
        "graph": drawn,
        "events": events,
        "older": events[-1].event.pk if len(events) == selectors.RECENT_EVENTS else None,
        "can_push": rank >= PUSH,
        "is_admin": rank >= ADMIN,
        "active": any(e.is_active for e in events),
        "parameters_form": ParametersForm(pipeline.parameters or {}),
        "restart_form": RestartForm(initial={"start_from": job_names[0] if job_names else ""}),
        "job_names": job_names,
        "tab": "events",
        "collections": selectors.collections_of(signed_in_user(request), pipeline),
        "children": selectors.children_of(pipeline, request.user),
    }
    return render(request, "pipelines/detail.html", context)


def _active(event: Event, builds: list[Build]) -> bool:
    return event.status in selectors.ACTIVE_EVENT_STATUSES or any(
        b.status in ACTIVE_STATUSES for b in builds
    )


@login_required
@require_POST
def pipeline_start(request: HttpRequest, pipeline_id: int) -> HttpResponseRedirect:
    """Start a new event from ~commit at the branch head, with the parameters form's values."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id, PUSH)
    form = ParametersForm(pipeline.parameters or {}, request.POST)
    form.is_valid()  # every field is optional: what is missing falls back to its default
    try:
        event = start_event(
            pipeline=pipeline,
            start_from="~commit",
            creator=creator_of(signed_in_user(request)),
            meta=form.event_meta(),
        )
    except PipelineError as exc:
        messages.error(request, exc.message)
        return redirect("pipelines:detail", pipeline_id=pipeline.pk)
    messages.success(request, f"Event {event.pk} started.")
    return redirect("pipelines:event", pipeline_id=pipeline.pk, event_id=event.pk)


@login_required
@require_POST
def pipeline_start_all(request: HttpRequest, pipeline_id: int) -> HttpResponseRedirect:
    """Start ~commit on every active child pipeline (Screwdriver's startAll); admins only."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id, ADMIN)
    events = start_all_children(parent=pipeline, creator=creator_of(signed_in_user(request)))
    messages.success(request, f"Started {len(events)} child pipeline(s).")
    return redirect("pipelines:detail", pipeline_id=pipeline.pk)


@login_required
@require_POST
def event_restart(request: HttpRequest, pipeline_id: int, event_id: int) -> HttpResponseRedirect:
    """Start a new event from one job: on this event's commit and meta, or fresh at the head."""
    pipeline, rank = pipeline_with_rank(request, pipeline_id)
    parent = get_object_or_404(Event, pk=event_id, pipeline=pipeline)
    if parent.is_pull_request and request.POST.get("mode") != "fresh":
        # Who may start a pull request again is Screwdriver's rule, as on POST /v4/events.
        refusal = pr_restart_refusal(
            event=parent, username=signed_in_user(request).get_username(), can_push=rank >= PUSH
        )
        if refusal:
            messages.error(request, refusal)
            return redirect("pipelines:event", pipeline_id=pipeline.pk, event_id=parent.pk)
    elif rank < PUSH:
        raise PermissionDenied(
            f"You need push rights on pipeline {pipeline.pk} for this: ask one of its admins."
        )
    form = RestartForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose the job to restart from.")
        return redirect("pipelines:event", pipeline_id=pipeline.pk, event_id=parent.pk)
    job = form.cleaned_data["start_from"]
    fresh = form.cleaned_data["mode"] == "fresh"
    refusal = manual_start_refusal(
        pipeline=pipeline, start_from=job, parent_event=None if fresh else parent
    )
    if refusal:
        messages.error(request, refusal)
        return redirect("pipelines:event", pipeline_id=pipeline.pk, event_id=parent.pk)
    try:
        if fresh:
            event = start_event(
                pipeline=pipeline,
                start_from=job,
                creator=creator_of(signed_in_user(request)),
                cause_message=f"Started from {job} by {signed_in_user(request).get_username()}",
            )
        else:
            what = "the failed jobs" if job == RESTART_FAILED else job
            event = restart_event(
                parent_event=parent,
                start_from=job,
                creator=creator_of(signed_in_user(request)),
                cause_message=f"Restarted {what} of event {parent.pk} by "
                f"{signed_in_user(request).get_username()}",
            )
    except PipelineError as exc:
        messages.error(request, exc.message)
        return redirect("pipelines:event", pipeline_id=pipeline.pk, event_id=parent.pk)
    if job == RESTART_FAILED:
        messages.success(request, f"Event {event.pk} restarted {', '.join(event.restart_jobs)}.")
    else:
        messages.success(request, f"Event {event.pk} started from {job}.")
    return redirect("pipelines:event", pipeline_id=pipeline.pk, event_id=event.pk)


@login_required
@require_POST
def event_stop(request: HttpRequest, pipeline_id: int, event_id: int) -> HttpResponseRedirect:
    """Stop every active build of an event."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id, PUSH)
    event = get_object_or_404(Event, pk=event_id, pipeline=pipeline)
    stop_event(event=event, message=f"Aborted by {signed_in_user(request).get_username()}")
    messages.success(request, f"Event {event.pk} stopped.")
    return redirect("pipelines:event", pipeline_id=pipeline.pk, event_id=event.pk)


@login_required
def pipeline_jobs(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """The jobs list: each job with its state and its most recent builds."""
    pipeline, rank = pipeline_with_rank(request, pipeline_id)
    context: dict[str, Any] = {
        "pipeline": pipeline,
        "branch": selectors.branch_of(pipeline),
        "rows": selectors.job_history(pipeline),
        "is_admin": rank >= ADMIN,
        "can_push": rank >= PUSH,
        "tab": "jobs",
        "options_url": reverse("pipelines:options", args=[pipeline.pk]),
    }
    return render(request, "pipelines/jobs.html", context)


# --- validator -----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def validator(request: HttpRequest) -> HttpResponse:
    """Paste a screwdriver.yaml and see its jobs, workflow graph, errors and warnings."""
    text = request.POST.get("yaml", "") if request.method == "POST" else ""
    context: dict[str, Any] = {"yaml": text, "result": None}
    if request.method == "POST":
        result = parse_pipeline_yaml(
            text, templates=database_templates, pipeline_templates=database_pipeline_templates
        )
        context.update(
            result=result,
            errors=result.get("errors", []),
            warnings=result.get("warnMessages", []),
            jobs=list(result.get("jobs", {}).items()),
            graph=graph_layout.layout(result.get("workflowGraph") or {}),
        )
    return render(request, "pipelines/validator.html", context)

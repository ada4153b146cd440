"""Pipeline pages of the UI: the list with its create form, one pipeline, and its Start button."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from pipelines import selectors
from pipelines.services import Creator, PipelineError, create_pipeline, start_event


def _user(request: HttpRequest) -> User:
    """The signed-in user of a view behind login_required."""
    assert isinstance(request.user, User)
    return request.user


class CreatePipelineForm(forms.Form):
    """The one field of Screwdriver's create form, named as in its API."""

    # Named as the API's field, so a form and an API client send the same thing.
    checkoutUrl = forms.CharField(
        label="Checkout URL",
        max_length=1024,
        widget=forms.TextInput(
            attrs={"placeholder": "/abs/path/repo.git#main", "autocomplete": "off"}
        ),
    )


@login_required
@require_http_methods(["GET", "POST"])
def pipeline_list(request: HttpRequest) -> HttpResponse:
    """All pipelines with their last event; POST creates one from a checkout URL."""
    form = CreatePipelineForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                pipeline = create_pipeline(
                    checkout_url=form.cleaned_data["checkoutUrl"].strip(), user=_user(request)
                )
            except PipelineError as exc:
                form.add_error("checkoutUrl", exc.message)
            else:
                messages.success(request, f"Pipeline {pipeline.name} created.")
                return redirect("pipelines:detail", pipeline_id=pipeline.pk)
        status = 400
    context = {"pipelines": selectors.pipeline_list(), "form": form}
    return render(request, "pipelines/list.html", context, status=status)


@login_required
def pipeline_detail(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """One pipeline: its jobs in workflow order and its recent events with their builds."""
    pipeline = selectors.pipeline_of(pipeline_id)
    events = selectors.event_rows(pipeline)
    context = {
        "pipeline": pipeline,
        "branch": selectors.branch_of(pipeline),
        "jobs": selectors.job_rows(pipeline),
        "events": events,
        "is_admin": pipeline.is_admin(request.user),
        "active": any(e.is_active for e in events),
    }
    return render(request, "pipelines/detail.html", context)


@login_required
@require_POST
def pipeline_start(request: HttpRequest, pipeline_id: int) -> HttpResponseRedirect:
    """Start a new event from ~commit at the branch head; admins of the pipeline only."""
    pipeline = selectors.pipeline_of(pipeline_id)
    if not pipeline.is_admin(request.user):
        raise PermissionDenied("Only admins of this pipeline can start it.")
    username = request.user.get_username()
    full_name = request.user.get_full_name() if hasattr(request.user, "get_full_name") else ""
    try:
        event = start_event(
            pipeline=pipeline,
            start_from="~commit",
            creator=Creator(name=full_name or username, username=username),
        )
    except PipelineError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Event {event.pk} started.")
    return redirect("pipelines:detail", pipeline_id=pipeline.pk)

"""Settings pages: a pipeline's secrets, tokens and options (admins only), and the user's tokens.

A secret's value and a token's value are never shown back: a token is shown once, in the
response that created or refreshed it, and never stored but as a hash.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from builds import caches
from pipelines import selectors, services
from pipelines.forms import (
    ClearCacheForm,
    DeletePipelineForm,
    JobStateForm,
    SecretForm,
    SecretUpdateForm,
    TokenForm,
)
from pipelines.models import DeployKey, Job, Pipeline, Secret, Token
from pipelines.views import ADMIN, pipeline_with_rank, signed_in_user

TOKEN_ACTIONS = frozenset({"refresh", "delete"})


def _base(pipeline: Pipeline, tab: str) -> dict[str, Any]:
    return {
        "pipeline": pipeline,
        "branch": selectors.branch_of(pipeline),
        "is_admin": True,
        "can_push": True,
        "tab": tab,
    }


# --- secrets -------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def pipeline_secrets(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """The pipeline's secrets by name; POST adds one."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id, ADMIN)
    # "Override" of an inherited secret opens the form with its name filled in.
    override = request.GET.get("override", "")
    form = SecretForm(request.POST or None, initial={"name": override[:64]})
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.create_secret(
                    pipeline=pipeline,
                    name=form.cleaned_data["name"],
                    value=form.cleaned_data["value"],
                    allow_in_pr=form.cleaned_data["allowInPR"],
                )
            except services.PipelineError as exc:
                form.add_error("name", exc.message)
            else:
                messages.success(request, f"Secret {form.cleaned_data['name']} added.")
                return redirect("pipelines:secrets", pipeline_id=pipeline.pk)
        status = 400
    context = {
        **_base(pipeline, "secrets"),
        "form": form,
        "secrets": Secret.objects.filter(pipeline=pipeline).defer("encrypted_value"),
        # A child's builds inherit its parent's secrets of other names: listed, never shown.
        "parent": pipeline.config_pipeline,
        "inherited": selectors.inherited_secrets(pipeline)
        .defer("encrypted_value")
        .order_by("name"),
        "overrides": selectors.overridden_secret_names(pipeline),
        # Its public half, to add to the repository; the private half never leaves the row.
        "deploy_key": DeployKey.objects.filter(pipeline=pipeline)
        .defer("encrypted_private_key")
        .first(),
    }
    return render(request, "pipelines/secrets.html", context, status=status)


def _secret(request: HttpRequest, pipeline_id: int, secret_id: int) -> Secret:
    pipeline, _ = pipeline_with_rank(request, pipeline_id, ADMIN)
    return get_object_or_404(Secret, pk=secret_id, pipeline=pipeline)


@login_required
@require_POST
def secret_update(request: HttpRequest, pipeline_id: int, secret_id: int) -> HttpResponseRedirect:
    """A new value (blank keeps the old one) and the allowInPR flag."""
    secret = _secret(request, pipeline_id, secret_id)
    form = SecretUpdateForm(request.POST)
    if form.is_valid():
        services.update_secret(
            secret=secret,
            value=form.cleaned_data["value"] or None,
            allow_in_pr=form.cleaned_data["allowInPR"],
        )
        messages.success(request, f"Secret {secret.name} updated.")
    else:
        messages.error(request, f"Secret {secret.name} was not changed: the value is too long.")
    return redirect("pipelines:secrets", pipeline_id=pipeline_id)


@login_required
@require_POST
def secret_delete(request: HttpRequest, pipeline_id: int, secret_id: int) -> HttpResponseRedirect:
    """Remove a secret; builds that list it no longer get it."""
    secret = _secret(request, pipeline_id, secret_id)
    services.delete_secret(secret=secret)
    messages.success(request, f"Secret {secret.name} deleted.")
    return redirect("pipelines:secrets", pipeline_id=pipeline_id)


# --- pipeline tokens -----------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def pipeline_tokens(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """The pipeline's API tokens; POST creates one and shows its value this once."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id, ADMIN)
    form = TokenForm(request.POST or None)
    new_value = ""
    status = 200
    if request.method == "POST":
        if form.is_valid():
            new = services.create_pipeline_token(
                pipeline=pipeline,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
            )
            new_value, form, status = new.value, TokenForm(), 201
        else:
            status = 400
    context = {
        **_base(pipeline, "tokens"),
        "form": form,
        "new_value": new_value,
        "tokens": Token.objects.filter(pipeline=pipeline).defer("hash"),
    }
    return render(request, "pipelines/tokens.html", context, status=status)


@login_required
@require_POST
def pipeline_token_action(
    request: HttpRequest, pipeline_id: int, token_id: int, action: str
) -> HttpResponse:
    """Refresh (a new value, shown once) or delete one of the pipeline's tokens."""
    if action not in TOKEN_ACTIONS:
        raise Http404("No such action.")
    pipeline, _ = pipeline_with_rank(request, pipeline_id, ADMIN)
    token = get_object_or_404(Token, pk=token_id, pipeline=pipeline)
    if action == "delete":
        services.delete_token(token=token)
        messages.success(request, f"Token {token.name} deleted.")
        return redirect("pipelines:tokens", pipeline_id=pipeline.pk)
    new = services.refresh_token(token=token)
    context = {
        **_base(pipeline, "tokens"),
        "form": TokenForm(),
        "new_value": new.value,
        "tokens": Token.objects.filter(pipeline=pipeline).defer("hash"),
    }
    return render(request, "pipelines/tokens.html", context)


# --- options -------------------------------------------------------------------------------


@login_required
def pipeline_options(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """Enable or disable jobs, sync with the repository, badges, delete the pipeline."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id, ADMIN)
    jobs = Job.objects.filter(pipeline=pipeline, archived=False).defer("permutations")
    badge = request.build_absolute_uri(f"/v4/pipelines/{pipeline.pk}/badge")
    page = request.build_absolute_uri(f"/pipelines/{pipeline.pk}")
    context = {
        **_base(pipeline, "options"),
        "jobs": jobs,
        "badge_url": badge,
        "badge_markdown": f"[![{pipeline.name}]({badge})]({page})",
        "delete_form": DeletePipelineForm(),
        "cache_groups": caches.caches_of(pipeline),
    }
    return render(request, "pipelines/options.html", context)


@login_required
@require_POST
def pipeline_clear_caches(request: HttpRequest, pipeline_id: int) -> HttpResponseRedirect:
    """Clear the caches of the pipeline, or of one of its jobs or events, once confirmed."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id, ADMIN)
    form = ClearCacheForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Tick the box next to Clear to confirm.")
        return redirect("pipelines:options", pipeline_id=pipeline.pk)
    try:
        count = caches.clear_scope(
            pipeline=pipeline,
            scope=form.cleaned_data["scope"],
            scope_id=form.cleaned_data["cacheId"],
        )
    except caches.CacheError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Cleared {count} cache{'' if count == 1 else 's'}.")
    return redirect("pipelines:options", pipeline_id=pipeline.pk)


@login_required
@require_POST
def job_state(request: HttpRequest, pipeline_id: int, job_id: int) -> HttpResponseRedirect:
    """Enable or disable one job, with the reason shown on the jobs list."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id, ADMIN)
    job = get_object_or_404(Job, pk=job_id, pipeline=pipeline)
    form = JobStateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose Enable or Disable.")
    else:
        services.set_job_state(
            job=job,
            state=form.cleaned_data["state"],
            message=form.cleaned_data["message"],
            changer=signed_in_user(request).get_username(),
        )
        verb = "enabled" if job.state == Job.State.ENABLED else "disabled"
        messages.success(request, f"Job {job.name} {verb}.")
    return redirect("pipelines:options", pipeline_id=pipeline.pk)


@login_required
@require_POST
def pipeline_sync(request: HttpRequest, pipeline_id: int) -> HttpResponseRedirect:
    """Re-read screwdriver.yaml at the branch head and update the jobs."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id, ADMIN)
    try:
        services.sync_pipeline(pipeline=pipeline)
        services.sync_child_pipelines(parent=pipeline)
    except services.PipelineError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Jobs synced with the repository.")
    return redirect("pipelines:options", pipeline_id=pipeline.pk)


@login_required
@require_POST
def pipeline_delete(request: HttpRequest, pipeline_id: int) -> HttpResponseRedirect:
    """Delete the pipeline and its history once its name is typed back."""
    pipeline, _ = pipeline_with_rank(request, pipeline_id, ADMIN)
    form = DeletePipelineForm(request.POST)
    if not form.is_valid() or form.cleaned_data["confirm"] != pipeline.name:
        messages.error(request, f"Type {pipeline.name} exactly to delete this pipeline.")
        return redirect("pipelines:options", pipeline_id=pipeline.pk)
    try:
        services.delete_pipeline(pipeline=pipeline)
    except services.PipelineError as exc:
        messages.error(request, exc.message)
        return redirect("pipelines:options", pipeline_id=pipeline.pk)
    messages.success(request, f"Pipeline {pipeline.name} deleted.")
    return redirect("pipelines:list")


# --- the user's own settings ---------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def user_settings(request: HttpRequest) -> HttpResponse:
    """The signed-in person's API tokens; POST creates one and shows its value this once."""
    user = signed_in_user(request)
    form = TokenForm(request.POST or None)
    new_value = ""
    status = 200
    if request.method == "POST":
        if form.is_valid():
            new = services.create_user_token(
                user=user,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
            )
            new_value, form, status = new.value, TokenForm(), 201
        else:
            status = 400
    context = {
        "form": form,
        "new_value": new_value,
        "tokens": Token.objects.filter(user=user).defer("hash"),
    }
    return render(request, "pipelines/user_settings.html", context, status=status)


@login_required
@require_POST
def user_token_action(request: HttpRequest, token_id: int, action: str) -> HttpResponse:
    """Refresh (a new value, shown once) or delete one of the person's own tokens."""
    if action not in TOKEN_ACTIONS:
        raise Http404("No such action.")
    user = signed_in_user(request)
    token = get_object_or_404(Token, pk=token_id, user=user)
    if action == "delete":
        services.delete_token(token=token)
        messages.success(request, f"Token {token.name} deleted.")
        return redirect("pipelines:user-settings")
    new = services.refresh_token(token=token)
    context = {
        "form": TokenForm(),
        "new_value": new.value,
        "tokens": Token.objects.filter(user=user).defer("hash"),
    }
    return render(request, "pipelines/user_settings.html", context)

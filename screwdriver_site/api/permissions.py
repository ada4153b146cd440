"""Who may do what through the API: token scopes per route, then rights per pipeline.

Every view says, per HTTP method, which kinds of caller it accepts (`scopes`, Screwdriver's
route scopes: user, guest, pipeline, build, temporal); `ScopedAccess` enforces that. The view
then asks `require_right` for pull, push or admin on the pipeline it touches.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import exceptions, permissions
from rest_framework.request import Request

from pipelines.models import Pipeline
from scm.rights import expired_sign_in_message, refresh_scm_role
from screwdriver_site.api.authentication import BuildPrincipal, Principal

USER, GUEST, PIPELINE, BUILD, TEMPORAL = "user", "guest", "pipeline", "build", "temporal"
READERS = frozenset({USER, GUEST, PIPELINE, BUILD})
PEOPLE_AND_PIPELINES = frozenset({USER, PIPELINE})
PEOPLE = frozenset({USER})
PULL, PUSH, ADMIN = "pull", "push", "admin"
# A launcher may still report teardown steps and logs this long after its build ended.
REPORT_GRACE_SECONDS = 300


def kind_of(request: Request) -> str | None:
    """The caller's scope: user (a person or their token), guest, pipeline, build or temporal."""
    user = request.user
    if user is None or not user.is_authenticated:
        return None
    if isinstance(user, Principal):
        return user.kind
    return USER


def signed_in_user(request: Request) -> User:
    """The person behind a request that a user-only route already let through."""
    user = request.user
    if not isinstance(user, User):
        raise exceptions.PermissionDenied("Only a person's token can do this.")
    return user


def is_build(request: Request) -> bool:
    return isinstance(request.user, BuildPrincipal)


class ScopedAccess(permissions.BasePermission):
    """Anonymous callers get a 401; callers of a scope the route does not take get a 403.

    A build's token is refused once its build has ended, except on the routes a launcher
    reports teardown through (`teardown_reporting`: heartbeat, step updates, log batches and
    the final status, which then answers 409).
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        kind = kind_of(request)
        if kind is None:
            raise exceptions.NotAuthenticated("Send Authorization: Bearer with a token.")
        method = "GET" if request.method in {"HEAD", "OPTIONS"} else str(request.method)
        allowed = getattr(view, "scopes", {}).get(method, PEOPLE)
        if kind not in allowed:
            raise exceptions.PermissionDenied(f"A {kind} token cannot call {method} on this route.")
        user = request.user
        if not isinstance(user, BuildPrincipal) or not user.ended:
            return True
        if method not in getattr(view, "teardown_reporting", ()):
            raise exceptions.PermissionDenied(
                f"Build {user.claims.build_id} has ended: its token may now only report teardown."
            )
        return True


def has_right(request: Request, pipeline: Pipeline, role: str) -> bool:
    """Whether the caller holds `role` on the pipeline (see docs/api.md for the rules)."""
    user = request.user
    kind = kind_of(request)
    public_read = role == PULL and pipeline.is_public
    if kind == USER:
        # A person's rights on a GitHub/GitLab pipeline include those the SCM gives them.
        refresh_scm_role(user=user, pipeline=pipeline)
        return pipeline.has_right(user, role)
    if kind == GUEST:
        return public_read and settings.SD_GUEST_ACCESS
    own = isinstance(user, Principal) and user.pipeline_id == pipeline.pk
    if kind == PIPELINE:
        return own and role in {PULL, PUSH}
    if kind == BUILD:
        return own and role == PULL
    return False


def require_right(request: Request, pipeline: Pipeline, role: str) -> None:
    if not has_right(request, pipeline, role):
        # Rights the SCM gave end when it refuses the person's token: say so, not "ask an admin".
        expired = expired_sign_in_message(request.user, pipeline.scm_context)
        raise exceptions.PermissionDenied(
            expired or f"You need {role} rights on pipeline {pipeline.pk}: ask one of its admins."
        )


def require_admin(request: Request, pipeline: Pipeline) -> None:
    require_right(request, pipeline, ADMIN)


def readable_pipelines(request: Request) -> QuerySet[Pipeline]:
    """The pipelines the caller may read, for lists."""
    user = request.user
    kind = kind_of(request)
    pipelines = Pipeline.objects.all()
    if kind == USER and user.is_superuser:
        return pipelines
    if kind == USER:
        return pipelines.readable_by(user)
    if kind == GUEST:
        return pipelines.public()
    if kind in {PIPELINE, BUILD}:
        return pipelines.filter(pk=int(getattr(user, "pipeline_id", None) or 0))
    return pipelines.none()


def require_own_build(request: Request, build_id: int) -> None:
    """A build token may touch only its own build."""
    user = request.user
    if isinstance(user, BuildPrincipal) and user.claims.build_id != build_id:
        raise exceptions.PermissionDenied("A build token can only act on its own build.")


def require_build_token(request: Request, build_id: int) -> None:
    if kind_of(request) != BUILD:
        raise exceptions.PermissionDenied("Only the build's own launcher may call this.")
    require_own_build(request, build_id)


def reporting_refusal(user: Any, build_id: int) -> str | None:
    """Why `user` may not report on build `build_id` as its launcher, or None when it may:
    only the build's own token, and not long after that build ended (its teardown steps,
    their logs and its final status still come in after a stop)."""
    if not isinstance(user, BuildPrincipal) or user.kind != BUILD:
        return "Only the build's own launcher may call this."
    if user.claims.build_id != build_id:
        return "A build token can only act on its own build."
    if user.ended and user.end_time is not None:
        age = (timezone.now() - user.end_time).total_seconds()
        if age > REPORT_GRACE_SECONDS:
            return (
                f"Build {build_id} ended over {REPORT_GRACE_SECONDS // 60} minutes ago: "
                "its token can no longer report."
            )
    return None

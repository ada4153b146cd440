"""Who may do what through the API."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from rest_framework import permissions
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from pipelines.api.authentication import BuildPrincipal
from pipelines.models import Pipeline


def signed_in_user(request: Request) -> User:
    """The person behind a request that a user-only permission already let through."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied("Sign in first.")
    return user


def is_build(request: Request) -> bool:
    return isinstance(request.user, BuildPrincipal)


class IsUser(permissions.BasePermission):
    """A signed-in person (or their API token); build tokens are refused."""

    message = "This endpoint needs a user's token; a build token cannot use it."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and not is_build(request))


class IsUserOrBuild(permissions.BasePermission):
    """A user, or a build acting on itself (each view checks the build id)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)


def require_admin(request: Request, pipeline: Pipeline) -> None:
    if is_build(request) or not pipeline.is_admin(request.user):
        raise PermissionDenied(
            f"You are not an admin of pipeline {pipeline.pk}: ask one of its admins for access."
        )


def require_own_build(request: Request, build_id: int) -> None:
    """A build token may touch only its own build."""
    if is_build(request) and request.user.claims.build_id != build_id:  # type: ignore[union-attr]
        raise PermissionDenied("A build token can only act on its own build.")


def require_build_token(request: Request, build_id: int) -> None:
    if not is_build(request):
        raise PermissionDenied("Only the build's own launcher may call this.")
    require_own_build(request, build_id)

"""Who may publish, tag and remove what builds publish (templates and commands)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.request import Request

from builds.models import Build
from pipelines.models import Pipeline
from pipelines.services import Publisher
from screwdriver_site.api.authentication import BuildPrincipal
from screwdriver_site.api.permissions import ADMIN, BUILD, USER, has_right, kind_of


def publisher_of(request: Request, kind: str) -> Publisher:
    """The calling build's pipeline, and whether the build belongs to a pull request."""
    user = request.user
    if not isinstance(user, BuildPrincipal):
        raise exceptions.PermissionDenied(f"Only a build's token can publish or tag {kind}s.")
    build = Build.objects.select_related("event", "job__pipeline").get(
        pk=int(user.claims.build_id or 0)
    )
    return Publisher(pipeline=build.job.pipeline, is_pr=build.event.is_pull_request)


def require_remover(request: Request, owner: Pipeline | None, full_name: str, kind: str) -> None:
    """A server admin, an admin of the owner pipeline, or a non-PR build of that pipeline."""
    user = request.user
    if kind_of(request) == USER and user.is_superuser:
        return
    if owner is None:
        raise exceptions.PermissionDenied(
            f"{kind.capitalize()} {full_name} has no owner pipeline: "
            "only a server admin may remove it."
        )
    if kind_of(request) == BUILD:
        publisher = publisher_of(request, kind)
        if publisher.pipeline.pk == owner.pk and not publisher.is_pr:
            return
        raise exceptions.PermissionDenied(f"Not allowed to remove this {kind}.")
    if not has_right(request, owner, ADMIN):
        raise exceptions.PermissionDenied(
            f"You need admin rights on pipeline {owner.pk}, which owns {kind} "
            f"{full_name}, to remove it."
        )

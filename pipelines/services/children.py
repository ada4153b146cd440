"""Child pipelines (Screwdriver's external config): the parent's `childPipelines` list makes them.

A child pipeline builds its own repository with the jobs of its parent's screwdriver.yaml.
Each sync of the parent at its branch head creates the children it lists, updates those it has
(admins, jobs) and deactivates those it no longer lists, as Screwdriver does.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import User

from pipelines.models import Pipeline, PipelinePermission
from pipelines.services.pipelines import (
    PipelineError,
    check_local_path,
    create_pipeline,
    scm_for,
    sync_pipeline,
    update_pipeline,
)
from scm.base import ScmError
from scm.local import LocalGitScm

logger = logging.getLogger(__name__)


def has_children(parent: Pipeline) -> bool:
    """Whether a sync of `parent` has child pipelines to create, update or deactivate."""
    if parent.config_pipeline_id:
        return False
    return bool(parent.child_pipelines_config) or (
        Pipeline.objects.filter(config_pipeline=parent, state=Pipeline.State.ACTIVE).exists()
    )


def sync_child_pipelines(*, parent: Pipeline) -> list[Pipeline]:
    """Make the parent's children match its `childPipelines.scmUrls`; return the listed ones.

    Listed children are created (or updated) ACTIVE with the parent's admins; children the list
    dropped become INACTIVE, so nothing starts them until the list names them again. A URL
    whose repository already has a pipeline of another parent (or none) is left alone, and a
    parent's creator must be allowed to create a pipeline of the repository, as at creation.
    """
    if parent.config_pipeline_id:
        return []
    urls = [str(u) for u in (parent.child_pipelines_config or {}).get("scmUrls") or []]
    listed: list[Pipeline] = []
    for url in urls:
        child = _create_or_update(parent=parent, url=url)
        if child is not None:
            listed.append(child)
    dropped = Pipeline.objects.filter(config_pipeline=parent, state=Pipeline.State.ACTIVE).exclude(
        pk__in=[c.pk for c in listed]
    )
    for child in dropped:
        logger.info("Pipeline %s: deactivating child pipeline %s", parent.pk, child.pk)
        update_pipeline(
            pipeline=child,
            state=Pipeline.State.INACTIVE,
            state_message=(
                f"Removed from the childPipelines of pipeline {parent.pk}; list it there again "
                "to reactivate it."
            ),
            changer=f"sd:pipeline:{parent.pk}",
        )
    return listed


def _create_or_update(*, parent: Pipeline, url: str) -> Pipeline | None:
    creator = parent.creator
    if creator is None:
        logger.warning("Pipeline %s has no creator to create child %s with", parent.pk, url)
        return None
    try:
        scm = scm_for(url)
        if isinstance(scm, LocalGitScm):
            # Before git runs: the parent's file must not probe the server's disk.
            check_local_path(checkout_url=url, user=creator)
        scm_uri = scm.parse_url(url).scm_uri
    except ScmError as exc:
        logger.warning("Pipeline %s: child pipeline %s: %s", parent.pk, url, exc)
        return None
    except PipelineError as exc:
        logger.warning("Pipeline %s: child pipeline %s: %s", parent.pk, url, exc.message)
        return None
    child = Pipeline.objects.filter(scm_uri=scm_uri).first()
    try:
        if child is None:
            child = create_pipeline(checkout_url=url, user=creator, config_pipeline=parent)
            logger.info("Pipeline %s: created child pipeline %s", parent.pk, child.pk)
        elif child.config_pipeline_id != parent.pk:
            logger.warning(
                "Pipeline %s: %s already has pipeline %s, not a child of it",
                parent.pk,
                url,
                child.pk,
            )
            return None
        else:
            if child.state != Pipeline.State.ACTIVE:
                update_pipeline(
                    pipeline=child,
                    state=Pipeline.State.ACTIVE,
                    state_message=f"Listed again in the childPipelines of pipeline {parent.pk}.",
                    changer=f"sd:pipeline:{parent.pk}",
                )
            sync_pipeline(pipeline=child)
    except PipelineError as exc:
        logger.warning("Pipeline %s: child pipeline %s: %s", parent.pk, url, exc.message)
        return None
    _copy_admins(parent=parent, child=child)
    return child


def _copy_admins(*, parent: Pipeline, child: Pipeline) -> None:
    """The parent's admins administer its children (Screwdriver copies `admins`)."""
    admins = PipelinePermission.objects.filter(
        pipeline=parent, role=PipelinePermission.Role.ADMIN
    ).select_related("user")
    names: dict[str, bool] = dict(child.admins or {})
    for row in admins:
        user: User = row.user
        PipelinePermission.objects.update_or_create(
            pipeline=child,
            user=user,
            defaults={
                "role": PipelinePermission.Role.ADMIN,
                "granted_by": f"sd:pipeline:{parent.pk}",
            },
        )
        names[user.get_username()] = True
    if names != child.admins:
        Pipeline.objects.filter(pk=child.pk).update(admins=names)
        child.admins = names

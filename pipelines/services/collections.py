"""Collections: a person's named lists of pipelines."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from pipelines.models import Collection, Pipeline
from pipelines.services.pipelines import PipelineError

# --- collections ---------------------------------------------------------------------------


def _readable_ids(user: User, pipeline_ids: list[int]) -> list[int]:
    ids = list(dict.fromkeys(pipeline_ids))
    found = set(Pipeline.objects.readable_by(user).filter(pk__in=ids).values_list("pk", flat=True))
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise PipelineError(
            f"No pipeline {', '.join(map(str, missing))} that you can read: check pipelineIds.",
            status=404,
        )
    return ids


@transaction.atomic
def create_collection(
    *, user: User, name: str, description: str = "", pipeline_ids: list[int] | None = None
) -> Collection:
    """A new named list of pipelines for `user`; names are unique per person."""
    ids = _readable_ids(user, pipeline_ids or [])
    if Collection.objects.filter(user=user, name=name).exists():
        raise PipelineError(f"You already have a collection named {name!r}.", status=409)
    collection = Collection.objects.create(user=user, name=name, description=description)
    collection.pipelines.set(ids)
    return collection


@transaction.atomic
def update_collection(
    *,
    collection: Collection,
    name: str | None = None,
    description: str | None = None,
    pipeline_ids: list[int] | None = None,
) -> Collection:
    """Rename a collection, describe it, or replace its pipelines."""
    if name is not None and name != collection.name:
        if Collection.objects.filter(user_id=collection.user_id, name=name).exists():
            raise PipelineError(f"You already have a collection named {name!r}.", status=409)
        collection.name = name
    if description is not None:
        collection.description = description
    collection.save(update_fields=["name", "description"])
    if pipeline_ids is not None:
        collection.pipelines.set(_readable_ids(collection.user, pipeline_ids))
    return collection


def add_to_collection(*, collection: Collection, pipeline: Pipeline) -> None:
    _readable_ids(collection.user, [pipeline.pk])
    collection.pipelines.add(pipeline)


def remove_from_collection(*, collection: Collection, pipeline: Pipeline) -> None:
    collection.pipelines.remove(pipeline)


def delete_collection(*, collection: Collection) -> None:
    collection.delete()

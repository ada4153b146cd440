"""Row locks that order every decision about a pipeline's builds: pipeline, build, event."""

from __future__ import annotations

from builds.models import Build
from pipelines.models import Pipeline


def lock_pipeline(pipeline_id: int) -> None:
    """Take the pipeline's row lock: blocking decisions of its events happen one at a time."""
    Pipeline.objects.select_for_update().filter(pk=pipeline_id).values_list("pk").first()


def lock_pipeline_of(build_id: int) -> None:
    """Lock the pipeline of a build before the build and its event."""
    # Lock order everywhere: the pipeline, then the build, then its event; a build that ends
    # may release BLOCKED builds of other events, which takes the pipeline's lock anyway.
    pipeline_id = Build.objects.filter(pk=build_id).values_list("job__pipeline_id", flat=True)
    first = pipeline_id.first()
    if first is not None:
        lock_pipeline(first)

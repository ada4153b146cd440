"""Reads of builds, their steps and their artifacts for the UI."""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import quote

from django.shortcuts import get_object_or_404

from builds.artifact_reads import (
    FileView,
    FolderEntry,
    TreeRow,
    file_view,
    folder_entries,
    rows_of,
    tree_rows,
)
from builds.artifacts import ArtifactPathError, artifact_at, check_artifact_path
from builds.models import Build, Step
from pipelines.models import Job
from pipelines.selectors import duration_text


@dataclass(frozen=True)
class StepRow:
    """A step of the build page with its display state."""

    step: Step

    @property
    def state(self) -> str:
        s = self.step
        if s.code is not None:
            return "success" if s.code == 0 else "failure"
        if s.start_time is not None:
            return "running"
        return "pending"

    @property
    def duration(self) -> str:
        return duration_text(self.step.start_time, self.step.end_time)


def build_of_pipeline(*, pipeline_id: int, build_id: int) -> Build:
    """The build with its job, event and pipeline, or a 404 if it is not of that pipeline."""
    return get_object_or_404(
        Build.objects.select_related("job", "job__pipeline", "event"),
        pk=build_id,
        job__pipeline_id=pipeline_id,
    )


def step_rows(build: Build) -> list[StepRow]:
    """The build's steps in the order they run."""
    return [StepRow(step=s) for s in Step.objects.filter(build=build).order_by("position")]


def latest_build_of_job(*, pipeline_id: int, job_name: str, status: str | None) -> Build | None:
    """The job's latest build (of that status when one is named), or None; 404 for no job."""
    job = get_object_or_404(Job, pipeline_id=pipeline_id, name=job_name)
    builds = Build.objects.filter(job=job)
    if status is not None:
        builds = builds.filter(status=status)
    return builds.select_related("job").order_by("-id").first()


@dataclass(frozen=True)
class ArtifactsPage:
    """The build page's Artifacts tab: the tree, and the file or folder the address names."""

    path: str
    tree: list[TreeRow]
    count: int
    total_size: int
    file: FileView | None = None
    folder: FolderEntry | None = None
    missing: bool = False

    @property
    def quoted(self) -> str:
        return quote(self.path)


def artifacts_page(build: Build, path: str) -> ArtifactsPage:
    """What the Artifacts tab shows for `path` ("" for none): one query, two with a file."""
    rows = rows_of(build)
    try:
        path = check_artifact_path(path) if path else ""
    except ArtifactPathError:
        return ArtifactsPage(path, tree_rows(rows, selected=""), len(rows), 0, missing=True)
    page = ArtifactsPage(
        path, tree_rows(rows, selected=path), len(rows), sum(row.size for row in rows)
    )
    if not path:
        return page
    artifact = artifact_at(build, path) if any(row.path == path for row in rows) else None
    if artifact is not None:
        return replace(page, file=file_view(artifact))
    parent, _slash, name = path.rpartition("/")
    folder = next(
        (e for e in folder_entries(rows, parent) or [] if e.is_folder and e.name == name), None
    )
    return replace(page, folder=folder, missing=folder is None)

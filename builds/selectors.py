"""Reads of builds and their steps for the UI."""

from __future__ import annotations

from dataclasses import dataclass

from django.shortcuts import get_object_or_404

from builds.models import Build, Step
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

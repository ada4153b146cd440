"""What a build's step printed, as the tests read it back."""

from __future__ import annotations

from builds.logs import read_page
from builds.models import Build, Step


def step_log(build: Build, step: str) -> list[str]:
    """The lines the step `step` of `build` printed, in order."""
    return [
        line["m"]
        for line in read_page(step=Step.objects.get(build=build, name=step), pages=100).lines
    ]

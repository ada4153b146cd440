"""What templates and commands share when builds publish them: the owner rule and versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.config.job_template import version_key
from pipelines.models import Pipeline
from pipelines.services.pipelines import PipelineError

# The column's width, as Screwdriver's schema sets it.
VERSION_MAX = 16


@dataclass(frozen=True)
class Publisher:
    """The build asking: its pipeline and whether it belongs to a pull request."""

    pipeline: Pipeline
    is_pr: bool


def pr_refusal(kind: str) -> str:
    """What a pull request's build hears when it tries to publish."""
    return (
        f"A pull request's build cannot publish or tag {kind}s: "
        "publish from a build of the pipeline's own branch."
    )


def check_owner(publisher: Publisher, owner_id: int | None, action: str, kind: str) -> None:
    """Refuse a pull request's build, and a build of any pipeline but the owner."""
    if publisher.is_pr:
        raise PipelineError(pr_refusal(kind), status=403)
    if owner_id != publisher.pipeline.pk:
        raise PipelineError(
            f"Not allowed to {action} this {kind}: only builds of the pipeline that first "
            "published it may.",
            status=403,
        )


def next_version(published: Sequence[str], major: int, minor: int | None) -> str:
    """The version a publish of ``major[.minor]`` gets: the next patch of the highest match."""
    prefix = f"{major}" if minor is None else f"{major}.{minor}"
    matching = [v for v in published if f"{v}.".startswith(f"{prefix}.")]
    if matching:
        found = (*version_key(max(matching, key=version_key)), 0, 0, 0)[:3]
        version = f"{found[0]}.{found[1]}.{found[2] + 1}"
    else:
        version = f"{major}.{minor or 0}.0"
    if len(version) > VERSION_MAX:
        raise PipelineError(
            f"Version {version} would be longer than {VERSION_MAX} characters: use a smaller one."
        )
    return version


def becomes_latest(version: str, latest: str | None) -> bool:
    """Whether a new version takes `latest` from the current one (same or higher major.minor)."""
    return latest is None or version_key(version)[:2] >= version_key(latest)[:2]

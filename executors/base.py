"""The one small interface every execution engine implements, and what it is given.

Engines never see a `Build`: the build kernel describes a launch (`LaunchRequest`) and a
launched build (`BuildHandle`) with exactly what the engines read, so this package stays pure
code below the Django apps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings


class ExecutorError(Exception):
    """An engine could not do what was asked; `permanent` says whether a retry can help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


@dataclass(frozen=True)
class LaunchRequest:
    """What an engine needs to start one build's launcher (not the launcher's own spec)."""

    build_id: int
    pipeline_id: int
    job_name: str
    # The job's image ("" when it names none: only engines that run containers need one).
    image: str
    annotations: Mapping[str, object]
    timeout_seconds: float
    # Where the launcher fetches its spec and reports, and the token it does so with.
    api_url: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class BuildHandle:
    """A launched build, as an engine finds it again: its id and what `start` returned."""

    build_id: int
    state: Mapping[str, Any]


def start_stats(*, image_pull_start: datetime | None = None) -> dict[str, str]:
    """What a start on this machine reports for the build's `stats` (Screwdriver's keys)."""
    reported = {"hostname": settings.SD_HOSTNAME}
    if image_pull_start is not None:
        reported["imagePullStartTime"] = (
            image_pull_start.astimezone(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
    return reported


class Executor(ABC):
    """Decides where a build's launcher runs; the launcher decides what runs."""

    name: str = ""

    @abstractmethod
    def start(self, request: LaunchRequest) -> dict[str, Any]:
        """Start the build's launcher; return the state needed to find it again.

        A `stats` entry in it (see `start_stats`) is moved to the build's stats, not kept.
        """

    @abstractmethod
    def stop(self, build: BuildHandle) -> None:
        """Ask the build's launcher to stop (it still runs teardown and reports)."""

    @abstractmethod
    def is_alive(self, build: BuildHandle) -> bool:
        """Whether anything of the build still runs on this engine."""

    def launcher_alive(self, build: BuildHandle) -> bool:
        """Whether the build's launcher is known to be running (False when unknown).

        The reaper asks before it declares a build lost: a launcher whose lease lapsed while
        it is still running could not reach the API, and will report once it can.
        """
        return False

    @abstractmethod
    def cleanup(self, build: BuildHandle) -> None:
        """Remove everything left of a finished or lost build: processes, workspace."""

    def sweep(self, *, active: Collection[int], keep: Collection[int]) -> dict[int, str]:
        """Remove leftovers of builds not in `keep`; say which `active` builds cannot succeed.

        Both are build ids: `active` were dispatched to this engine and have not finished.
        """
        return {}

"""The one small interface every execution engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from builds.models import Build


class ExecutorError(Exception):
    """An engine could not do what was asked; `permanent` says whether a retry can help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class Executor(ABC):
    """Decides where a build's launcher runs; the launcher decides what runs."""

    name: str = ""

    @abstractmethod
    def start(self, build: Build, *, token: str) -> dict[str, Any]:
        """Start the launcher for `build`; return the state needed to find it again."""

    @abstractmethod
    def stop(self, build: Build) -> None:
        """Ask the build's launcher to stop (it still runs teardown and reports)."""

    @abstractmethod
    def is_alive(self, build: Build) -> bool:
        """Whether anything of the build still runs on this engine."""

    def launcher_alive(self, build: Build) -> bool:
        """Whether the build's launcher is known to be running (False when unknown).

        The reaper asks before it declares a build lost: a launcher whose lease lapsed while
        it is still running could not reach the API, and will report once it can.
        """
        return False

    @abstractmethod
    def cleanup(self, build: Build) -> None:
        """Remove everything left of a finished or lost build: processes, workspace."""

    def sweep(self, *, active: Sequence[Build], keep: Collection[int]) -> dict[int, str]:
        """Remove leftovers of builds not in `keep`; say which `active` builds cannot succeed."""
        return {}

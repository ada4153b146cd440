"""Fixtures of the acceptance suite; the stack itself is in acceptance/stack.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from acceptance.stack import RUN_DIR, STACKS, Stack, git, new_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """One `make run` for this test process, with default settings."""
    s = new_stack("stack")
    yield s
    s.kill()


@pytest.fixture
def repo(tmp_path: Path) -> Callable[[str], tuple[Path, Path]]:
    """make(yaml): a bare repository holding `screwdriver.yaml`, and a clone to push from."""

    def make(yaml: str, name: str = "app") -> tuple[Path, Path]:
        bare = tmp_path / f"{name}.git"
        work = tmp_path / name
        git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
        git("clone", "--quiet", str(bare), str(work), cwd=tmp_path)
        (work / "screwdriver.yaml").write_text(yaml)
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", "first", cwd=work)
        git("push", "--quiet", "origin", "HEAD:main", cwd=work)
        return bare, work

    return make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report ends with what each stack of this process logged last."""
    report = yield
    if report.failed:
        for stack in STACKS:
            if stack.log.exists():
                tail = stack.log.read_text(errors="replace").splitlines()[-80:]
                report.sections.append((f"make run log ({stack.log})", "\n".join(tail)))
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The first process removes the run's folder, or keeps it (logs) when a test failed."""
    if hasattr(session.config, "workerinput"):
        return
    if exitstatus == 0 and not os.environ.get("SD_ACCEPTANCE_KEEP"):
        shutil.rmtree(RUN_DIR, ignore_errors=True)
    else:
        print(f"\nacceptance: the clone, data folders and make-run logs are in {RUN_DIR}")

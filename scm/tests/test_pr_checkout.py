"""A PR build checks out the merge of the pull request into its base, as Screwdriver's does."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import respx

from builds.launch import launch_spec
from builds.models import Build
from executors.launcher.environment import build_environment
from executors.launcher.logs import Masker
from executors.launcher.runner import Checkout, Runner, Step
from executors.launcher.workspace import Workspace
from executors.tests.reporting import Collector
from pipelines.services import Creator, create_pipeline, start_pr_event
from scm.tests.github_fakes import SECRET, fake_github
from scm.tests.scm_people import repository_admin

PR_SHA = "d" * 40


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0"}
    identity = ["-c", "user.email=dev@example.com", "-c", "user.name=Dev"]
    out = subprocess.run(
        ["git", *identity, "-C", str(repo), *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def pull_request_repo(tmp_path: Path, *, pr_files: dict[str, str]) -> tuple[Path, str, str]:
    """A bare "GitHub" repository whose refs/pull/7/head branched off main before main moved on.

    Returns the bare repository, the PR's head sha and main's tip.
    """
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    commit(work, {"shared.txt": "base line\n", "README": "readme\n"}, "initial")
    git(work, "checkout", "-q", "-b", "feature")
    pr_sha = commit(work, pr_files, "the pull request's change")
    git(work, "checkout", "-q", "main")
    base_sha = commit(work, {"main-only.txt": "landed on main meanwhile\n"}, "main moves on")
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    git(bare, "update-ref", "refs/pull/7/head", pr_sha)
    git(bare, "branch", "-D", "feature")  # only the PR ref holds the PR's commit, as on GitHub
    return bare, pr_sha, base_sha


def run(tmp_path: Path, checkout: Checkout, steps: list[Step]) -> tuple[Any, Collector]:
    workspace = Workspace(tmp_path / "ws", "origin")
    workspace.prepare({})
    env = build_environment(
        base={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_GLOBAL": "/dev/null"},
        launcher_vars=workspace.variables("build-token"),
        bin_dir=workspace.bin,
        job_environment=[],
        secrets={},
    )
    reporter = Collector()
    runner = Runner(workspace=workspace, env=env, reporter=reporter, masker=Masker(["tok"]))
    return runner.run(steps, checkout), reporter


def test_a_pr_build_runs_on_the_merge_of_the_pull_request_into_its_base(tmp_path: Path) -> None:
    bare, pr_sha, base_sha = pull_request_repo(tmp_path, pr_files={"feature.txt": "from the PR\n"})
    checkout = Checkout(
        str(bare), sha=pr_sha, branch="main", pr_number=7, pr_ref="refs/pull/7/head"
    )
    show = Step(
        "show",
        "cat feature.txt main-only.txt; git rev-parse --abbrev-ref HEAD; "
        "git log -1 --format='%P|%an|%ae'",
    )
    result, out = run(tmp_path, checkout, [show])
    assert result.status == "SUCCESS", out.text("sd-setup-scm")
    assert out.text("show") == [
        "from the PR",
        "landed on main meanwhile",
        "pr",
        f"{pr_sha} {base_sha}|sd-buildbot|dev-null@screwdriver.cd",
    ]
    setup = "\n".join(out.text("sd-setup-scm"))
    assert "$ git -c advice.detachedHead=false -C" in setup
    assert "fetch --no-tags origin refs/pull/7/head" in setup


def test_a_pr_that_conflicts_with_its_base_fails_setup_and_says_what_to_do(
    tmp_path: Path,
) -> None:
    bare, pr_sha, _ = pull_request_repo(
        tmp_path, pr_files={"main-only.txt": "the PR wrote this file differently\n"}
    )
    checkout = Checkout(
        str(bare), sha=pr_sha, branch="main", pr_number=7, pr_ref="refs/pull/7/head"
    )
    result, out = run(tmp_path, checkout, [Step("build", "echo never")])
    assert result.status == "FAILURE"
    assert result.codes["sd-setup-scm"] != 0 and "build" not in result.codes
    assert out.text("sd-setup-scm")[-1] == (
        "Pull request 7 does not merge cleanly into main: merge main into the pull request's "
        "branch (or rebase it), resolve the conflicts and push again."
    )


def test_names_that_git_would_read_as_options_are_refused_before_git_runs(
    tmp_path: Path,
) -> None:
    bare, pr_sha, _ = pull_request_repo(tmp_path, pr_files={"feature.txt": "x\n"})
    for checkout in (
        Checkout(str(bare), sha=pr_sha, branch="--upload-pack=touch pwned", pr_number=7),
        Checkout(str(bare), sha=pr_sha, branch="main", pr_number=7, pr_ref="--output=/tmp/x"),
    ):
        result, out = run(tmp_path / checkout.branch[:4].strip("-"), checkout, [])
        assert result.codes["sd-setup-scm"] == 1
        assert out.text("sd-setup-scm")[0].startswith("Refusing to ")
        assert not any(line.startswith("$ git") for line in out.text("sd-setup-scm"))


@pytest.fixture
def github(settings: Any) -> Iterator[respx.Router]:
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    with respx.mock(assert_all_called=False) as router:
        fake_github(router, ("Codertocat/Hello-World",))
        yield router


@pytest.mark.django_db
def test_the_launch_spec_of_a_pr_build_asks_for_the_merge_and_sets_screwdrivers_variables(
    github: respx.Router,
) -> None:
    user = repository_admin("octo")
    pipeline = create_pipeline(
        checkout_url="https://github.com/Codertocat/Hello-World.git#master", user=user
    )
    event = start_pr_event(
        pipeline=pipeline,
        pr_num=7,
        sha=PR_SHA,
        creator=Creator(name="m", username="mallory"),
        pr={"title": "t", "url": "", "ref": "patch", "fork": True},
    )
    assert event is not None
    spec = launch_spec(Build.objects.get(event=event))
    assert spec["checkout"] == {
        "url": "https://github.com/Codertocat/Hello-World.git",
        "branch": "master",
        "sha": PR_SHA,
        "name": "Hello-World",
        "rootDir": "",
        "pr": {"number": 7, "headRef": "refs/pull/7/head"},
        # The server has a GitHub token: the launcher asks for it to clone with.
        "auth": "token",
    }
    env = dict(spec["environment"])
    assert env["SD_BUILD_SHA"] == PR_SHA
    assert env["SD_PULL_REQUEST"] == "7"
    assert env["GIT_BRANCH"] == "origin/refs/pull/7/head:pr"
    assert env["PR_BASE_BRANCH_NAME"] == "master"
    assert env["PR_BRANCH_NAME"] == "upstream/patch"

"""Private GitHub and GitLab repositories build end to end, and the credential they clone with
shows nowhere: not in a log line, a step's environment, an API answer or a file.

The fake SCMs (github_server.py, gitlab_server.py) refuse anonymous git requests to a
private repository with 401 and take the server's token, or only the token they issued for
the build (a GitHub App's installation token, a GitLab deploy token); the deploy-key build
reaches its repository through a fake `ssh` on the launcher's PATH that records how git
called it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.test import APIClient

from builds.models import FINISHED_STATUSES, Build, BuildStatus, Step
from builds.services import clone_credential_name
from builds.tests.step_logs import step_log
from conftest import GitRepo, Stack, wait_until
from pipelines.encryption import decrypt
from pipelines.models import DeployKey, Pipeline
from pipelines.services import create_pipeline, creator_of, start_event, sync_child_pipelines
from scm.tests.git_http import ANONYMOUS, GitHost
from scm.tests.github_server import FakeGitHub
from scm.tests.scm_people import repository_admin

YAML = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    environment:
      GIT_SHALLOW_CLONE_DEPTH: 1
    steps:
      - dump: |
          env > "$SD_ARTIFACTS_DIR/env.txt"
          cat /proc/self/environ > "$SD_ARTIFACTS_DIR/self.environ"
          cat "/proc/$PPID/environ" > "$SD_ARTIFACTS_DIR/parent.environ" || true
      - clone: |
          git rev-parse --is-shallow-repository
          git config --local --get-regexp '^credential' || echo no credential helper
          git remote get-url origin
      - ask: |
          python3 - <<'PY'
          import os, urllib.error, urllib.request
          env = os.environ
          url = f"{env['SD_API_URL']}builds/{env['SD_BUILD_ID']}/checkout-credential"
          asked = urllib.request.Request(
              url, method="POST", headers={"Authorization": f"Bearer {env['SD_TOKEN']}"}
          )
          try:
              with urllib.request.urlopen(asked) as answer:
                  print(answer.read().decode(), answer.status)
          except urllib.error.HTTPError as refused:
              print(refused.read().decode(), refused.code)
          PY
"""

# ssh as git calls it, then the repository it names served from REPOS: what GitHub does.
FAKE_SSH = """#!/bin/sh
# A stand-in for ssh: records how git called it, then serves the repository itself.
printf '%s\\n' "$@" > "{record}/argv"
while [ $# -gt 1 ]; do
  case "$1" in
    -i) stat -L -c %a "$2" > "{record}/mode"
        sha256sum < "$2" | cut -d' ' -f1 > "{record}/key"; shift ;;
    -o) shift ;;
  esac
  shift
done
repo=$(printf '%s' "$1" | sed "s/^git-upload-pack '\\(.*\\)'$/\\1/")
exec git-upload-pack "{repos}/$repo"
"""


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    """Keep the workspaces to search them; put the fake ssh first on the launcher's PATH."""
    record, repos, fake = tmp_path / "ssh-record", tmp_path / "ssh-repos", tmp_path / "fake-bin"
    for folder in (record, repos, fake):
        folder.mkdir()
    ssh = fake / "ssh"
    ssh.write_text(FAKE_SSH.format(record=record, repos=repos))
    ssh.chmod(0o755)
    return {
        "SD_KEEP_WORKSPACES": "true",
        "SD_DEPLOY_KEYS": "true",
        "PATH": f"{fake}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }


def _finished(pipeline: Pipeline) -> Build | None:
    build = Build.objects.filter(job__pipeline=pipeline).select_related("event").first()
    return build if build and build.status in FINISHED_STATUSES else None


def _build(pipeline: Pipeline, user: User) -> Build:
    start_event(pipeline=pipeline, start_from="~commit", creator=creator_of(user))
    build: Build = wait_until(lambda: _finished(pipeline), timeout=90, what="the build")
    return build


def _logs(build: Build) -> list[bytes]:
    """Every log line the server keeps for the build, a step at a time."""
    return ["\n".join(step_log(build, s.name)).encode() for s in Step.objects.filter(build=build)]


def _everything_stored_and_shown(build: Build, user: User, data_dir: Path) -> list[bytes]:
    """The build's logs, API answers about it, and every file the build, its launcher, the
    worker and the database left."""
    found = _logs(build)
    api = APIClient()
    api.force_authenticate(user)
    pipeline_id, event_id = build.job.pipeline_id, build.event_id
    for url in (
        f"/v4/builds/{build.pk}",
        f"/v4/builds/{build.pk}/steps",
        f"/v4/events/{event_id}",
        f"/v4/events/{event_id}/builds",
        f"/v4/pipelines/{pipeline_id}",
        f"/v4/pipelines/{pipeline_id}/jobs",
        f"/v4/pipelines/{pipeline_id}/events",
    ):
        answer = api.get(url)
        assert answer.status_code == 200, url
        found.append(answer.content)
    # os.walk, not rglob: the worker may still be removing the build's workspace, and a
    # folder gone between the listing and its reading holds nothing any more (nor a file).
    for path in (Path(top, name) for top, _dirs, files in os.walk(data_dir) for name in files):
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and not path.is_symlink():
                found.append(path.read_bytes())
    if connection.vendor == "sqlite":
        database = str(connection.settings_dict["NAME"])
        # Read by another process: a close() of any descriptor of the database file in this
        # one drops every POSIX lock its SQLite connections hold, and the worker's last
        # connection would then delete the write-ahead log this process still writes to.
        for end in ("", "-wal"):
            if Path(database + end).is_file():
                found.append(subprocess.run(["cat", database + end], capture_output=True).stdout)
    return found


def _private(fake: GitHost, path: str, repo: GitRepo) -> None:
    fake.repos[path] = repo.bare
    fake.private.add(path)


def _issued(fake: GitHost) -> list[str]:
    """Every token the fake SCM issued, revoked or not (GitLab keeps its deploy tokens' rows)."""
    rows = getattr(fake, "deploy_tokens", {}).values()
    return sorted({*fake.issued, *(str(row["token"]) for row in rows)})


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scm", ["github", "github-app", "gitlab", "gitlab-deploy-token"])
def test_a_private_repository_builds_and_the_token_it_cloned_with_shows_nowhere(
    scm: str,
    request: pytest.FixtureRequest,
    settings: Any,
    make_repo: Callable[..., GitRepo],
) -> None:
    site = scm.split("-")[0]
    stack, fake = request.getfixturevalue(f"{site}_stack")
    repo = make_repo({"screwdriver.yaml": YAML}, name="app")
    repo.push({"second.txt": "more history than the depth of 1\n"}, "second")
    if site == "github":
        path, token = "octo-org/app", settings.SD_GITHUB_TOKEN
        url = f"https://127.0.0.1/{path}.git#main"
        clone_url = settings.SD_GITHUB_API_URL.removesuffix("/api/v3") + f"/{path}.git"
    else:
        path, token = "group/sub/app", settings.SD_GITLAB_TOKEN
        url = clone_url = f"{settings.SD_GITLAB_URL}/{path}.git"
    if scm == "github-app":
        # The fake's git now refuses the server's token: only an installation token clones.
        request.getfixturevalue("github_app").installations[path] = 3
    elif scm == "gitlab":
        settings.SD_GITLAB_CLONE_CREDENTIAL = "operator-token"
    elif scm == "gitlab-deploy-token":
        fake.credential_clones = False
    _private(fake, path, repo)
    user = repository_admin("octocat", provider=site)
    pipeline = create_pipeline(checkout_url=url, user=user)
    assert pipeline.scm_repo["private"] is True

    build = _build(pipeline, user)
    setup = "\n".join(step_log(build, "sd-setup-scm"))
    assert build.status == BuildStatus.SUCCESS, setup
    # Refused without a credential, let in with one: the server's token (as x-access-token or
    # oauth2), or the one issued for this build alone.
    callers = set(fake.git_callers) - {ANONYMOUS}
    assert fake.refused >= 1
    assert (
        callers
        == {
            "github": {"x-access-token"},
            "github-app": {"x-access-token"},
            "gitlab": {"oauth2"},
            "gitlab-deploy-token": {"gitlab+deploy-token-1"},
        }[scm]
    )
    issued = _issued(fake)
    assert len(issued) == (0 if scm in ("github", "gitlab") else 1)
    assert step_log(build, "clone") == ["true", "no credential helper", clone_url]
    # A step holds the build token, yet cannot get the credential with it.
    (asked,) = step_log(build, "ask")
    assert asked.endswith(" 409") and "checkout credential" in asked
    if scm == "gitlab-deploy-token":
        # Revoked once the build ended, by the worker.
        wait_until(lambda: not fake.issued, timeout=30, what="the deploy token's revocation")
        (row,) = fake.deploy_tokens.values()
        assert row["revoked"] and row["name"] == clone_credential_name(build.pk)

    workspace = Path(settings.SD_WORKSPACES_DIR) / f"build-{build.pk}"
    dumped = (workspace / "artifacts" / "env.txt").read_text()
    assert (
        f"SD_BUILD_ID={build.pk}" in dumped
        and (workspace / "artifacts" / "self.environ").stat().st_size
    )
    everything = _everything_stored_and_shown(build, user, stack.data_dir)
    for value in (token, *issued):
        assert not [part for part in everything if value.encode() in part]
    # Nothing needed masking: the token never reached the output at all.
    assert not any(b"****" in part for part in _logs(build))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_github_app_not_installed_on_the_repository_fails_the_build_saying_so(
    github_stack: tuple[Stack, Any],
    github_app: FakeGitHub,
    make_repo: Callable[..., GitRepo],
) -> None:
    _private(github_app, "octo-org/app", make_repo({"screwdriver.yaml": YAML}, name="app"))
    user = repository_admin("octocat")
    pipeline = create_pipeline(checkout_url="https://127.0.0.1/octo-org/app.git#main", user=user)

    build = _build(pipeline, user)
    reason = (
        f"The GitHub App {github_app.app_id} is not installed on octo-org/app: install it on "
        "the repository (or its organization) for builds to clone it."
    )
    assert (build.status, build.status_message) == (BuildStatus.FAILURE, reason)
    assert reason in "\n".join(step_log(build, "sd-setup-scm"))
    # Nothing was cloned, and no user step ran.
    assert github_app.git_files == [] and github_app.issued == {}
    assert not Step.objects.filter(build=build, name="dump", start_time__isnull=False).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_deploy_key_pipeline_clones_over_ssh_with_its_own_key(
    github_stack: tuple[Stack, Any],
    settings: Any,
    tmp_path: Path,
    make_repo: Callable[..., GitRepo],
) -> None:
    stack, github = github_stack
    settings.SD_DEPLOY_KEYS = True
    yaml = "annotations:\n  screwdriver.cd/useDeployKey: true\n" + YAML
    repo = make_repo({"screwdriver.yaml": yaml}, name="app")
    _private(github, "octo-org/app", repo)
    (tmp_path / "ssh-repos" / "octo-org").mkdir()
    (tmp_path / "ssh-repos" / "octo-org" / "app.git").symlink_to(repo.bare)
    user = repository_admin("octocat")
    pipeline = create_pipeline(checkout_url="https://127.0.0.1/octo-org/app.git#main", user=user)
    key = DeployKey.objects.get(pipeline=pipeline)
    private = decrypt(key.encrypted_private_key)

    build = _build(pipeline, user)
    setup = "\n".join(step_log(build, "sd-setup-scm"))
    assert build.status == BuildStatus.SUCCESS, setup
    assert (
        "$ git clone --no-checkout --depth 1" in setup and "git@127.0.0.1:octo-org/app.git" in setup
    )
    assert "host key of the repository's server is not checked" in setup
    record = tmp_path / "ssh-record"
    argv = (record / "argv").read_text().splitlines()
    assert {"-F", "/dev/null", "IdentitiesOnly=yes", "StrictHostKeyChecking=no"} <= set(argv)
    assert "git@127.0.0.1" in argv
    assert (record / "mode").read_text().strip() == "600"
    assert (record / "key").read_text().strip() == hashlib.sha256(private.encode()).hexdigest()
    # The HTTPS side was never asked: the deploy key alone opened the repository.
    assert github.git_files == []
    body = private.splitlines()[1].encode()
    everything = _everything_stored_and_shown(build, user, stack.data_dir)
    assert not [part for part in everything if body in part]


PARENT_YAML = """
childPipelines:
  scmUrls:
    - {child}
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - shared: cat "$SD_CONFIG_DIR/shared.txt"
      - own: cat README.md
      - helper: git -C "$SD_CONFIG_DIR" config --local --get-regexp '^credential' || echo none
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scm", ["github-app", "gitlab-deploy-token"])
def test_a_private_parent_is_cloned_into_sd_config_dir_with_a_credential_of_its_own(
    scm: str,
    request: pytest.FixtureRequest,
    settings: Any,
    make_repo: Callable[..., GitRepo],
) -> None:
    site = scm.split("-")[0]
    stack, fake = request.getfixturevalue(f"{site}_stack")
    if site == "github":
        request.getfixturevalue("github_app")
        owner, base = "octo-org", "https://127.0.0.1"
        fake.installations.update({"octo-org/parent": 3, "octo-org/child": 3})
    else:
        owner, base = "group", settings.SD_GITLAB_URL
        fake.credential_clones = False
    # A childPipelines URL is an https one without a port, or an SSH one (as Screwdriver's).
    child_url = f"https://127.0.0.1/{owner}/child.git#main"
    if site == "gitlab":
        child_url = f"git@127.0.0.1:{owner}/child.git#main"
    child_repo = make_repo({"README.md": "the child's own file"}, name="child")
    parent_repo = make_repo(
        {"screwdriver.yaml": PARENT_YAML.format(child=child_url), "shared.txt": "from the parent"},
        name="parent",
    )
    _private(fake, f"{owner}/parent", parent_repo)
    _private(fake, f"{owner}/child", child_repo)
    user = repository_admin("octocat", provider=site)
    parent = create_pipeline(checkout_url=f"{base}/{owner}/parent.git#main", user=user)
    sync_child_pipelines(parent=parent)
    child = Pipeline.objects.get(config_pipeline=parent)

    build = _build(child, user)
    setup = "\n".join(step_log(build, "sd-setup-scm"))
    assert build.status == BuildStatus.SUCCESS, setup
    assert step_log(build, "shared") == ["from the parent"]
    assert step_log(build, "own") == ["the child's own file"]
    assert step_log(build, "helper") == ["none"]
    # Two credentials, each issued for one of the two repositories.
    issued = _issued(fake)
    assert len(issued) == 2
    if site == "gitlab":
        wait_until(lambda: not fake.issued, timeout=30, what="the deploy tokens' revocation")
        rows = fake.deploy_tokens.values()
        assert {row["project"] for row in rows} == {f"{owner}/parent", f"{owner}/child"}
        assert all(row["revoked"] for row in rows)
    everything = _everything_stored_and_shown(build, user, stack.data_dir)
    for value in issued:
        assert not [part for part in everything if value.encode() in part]
    assert not any(b"****" in part for part in _logs(build))

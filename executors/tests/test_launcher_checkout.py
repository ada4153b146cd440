"""sd-setup-scm's checkout: how deep it clones, and the credential it clones a private
repository with (asked for once, handed to git in memory, never seen by a step or a log)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from executors.launcher.agent import Agent, control_dir, prepare_control_dir
from executors.launcher.checkout import Checkout, CheckoutError, Commands, Shallow, shallow_of
from executors.launcher.credentials import (
    CloneAccess,
    CloneCredential,
    CredentialError,
    origin_of,
)
from executors.launcher.environment import build_environment
from executors.launcher.logs import Masker
from executors.launcher.runner import Runner, Step
from executors.launcher.workspace import Workspace
from executors.tests.reporting import Collector
from pipelines.deploy_keys import new_key_pair
from scm.tests.git_http import GitHost, serve, serve_git

URL = "https://scm.example/org/app.git"
SHA = "c" * 40
TOKEN = "ghs_theOperatorsToken0123456789abcdef"


# --- how deep -------------------------------------------------------------------------------


def test_a_clone_is_shallow_by_default_as_screwdrivers_fifty_commits_of_every_branch() -> None:
    assert shallow_of({}, Checkout(URL)) == Shallow(["--depth", "50"], ["--no-single-branch"])


def test_the_jobs_environment_sets_the_depth_or_a_date_which_wins() -> None:
    env = {"GIT_SHALLOW_CLONE_DEPTH": "7", "GIT_SHALLOW_CLONE_SINGLE_BRANCH": "true"}
    assert shallow_of(env, Checkout(URL)) == Shallow(["--depth", "7"], ["--single-branch"])
    since = {**env, "GIT_SHALLOW_CLONE_SINCE": "2 weeks ago"}
    assert shallow_of(since, Checkout(URL)).depth == ["--shallow-since=2 weeks ago"]
    # A date that looks like an option stays inside the one argv word.
    sly = {"GIT_SHALLOW_CLONE_SINCE": "--upload-pack=touch /tmp/x"}
    assert shallow_of(sly, Checkout(URL)).depth == ["--shallow-since=--upload-pack=touch /tmp/x"]


@pytest.mark.parametrize("url", ["/srv/git/app.git", "file:///srv/git/app.git"])
def test_false_or_a_repository_on_this_disk_clones_the_whole_history(url: str) -> None:
    assert not shallow_of({"GIT_SHALLOW_CLONE": "False"}, Checkout(URL))
    assert not shallow_of({}, Checkout(url))


@pytest.mark.parametrize("depth", ["0", "-3", "ten", "1e3", "\uff15", "2147483648", "5 --x"])
def test_a_depth_that_is_not_a_positive_whole_number_fails_the_checkout(depth: str) -> None:
    with pytest.raises(CheckoutError, match="GIT_SHALLOW_CLONE_DEPTH must be a whole number"):
        shallow_of({"GIT_SHALLOW_CLONE_DEPTH": depth}, Checkout(URL))


def test_a_date_of_several_lines_fails_the_checkout() -> None:
    with pytest.raises(CheckoutError, match="GIT_SHALLOW_CLONE_SINCE must be a date"):
        shallow_of({"GIT_SHALLOW_CLONE_SINCE": "1 week ago\n--bad"}, Checkout(URL))


def test_a_shallow_clone_takes_the_branch_and_fetches_the_sha_when_it_lies_deeper() -> None:
    shallow = Shallow(["--depth", "50"], ["--no-single-branch"])
    plan = Commands(Checkout(URL, SHA, "main"), Path("/w/src/app"), shallow).plan()
    clone = ["git", "clone", "--no-checkout", "--depth", "50", "--no-single-branch"]
    assert plan.remote == [[*clone, "--branch", "main", "--", URL, "/w/src/app"]]
    assert plan.fetch_sha is not None
    assert plan.fetch_sha[5:] == ["fetch", "--no-tags", "--depth", "50", "origin", SHA]


def test_a_pull_requests_head_is_fetched_whole_onto_the_shallow_base() -> None:
    checkout = Checkout(URL, SHA, "main", pr_number=7, pr_ref="refs/pull/7/head")
    plan = Commands(checkout, Path("/w/src/app"), Shallow(["--depth", "3"], [])).plan()
    assert plan.remote[0][3:6] == ["--depth", "3", "--branch"]
    assert plan.remote[1][5:] == ["fetch", "--no-tags", "origin", "refs/pull/7/head"]
    assert plan.fetch_sha is None


# --- the credential -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ({"type": "sshKey", "privateKey": "x"}, "token"),
        ({"type": "token", "username": "u", "password": ""}, "token"),
        ({"type": "token", "username": "u", "password": "a\nb"}, "token"),
        ({"type": "token", "username": "u", "password": 7}, "token"),
        ({"type": "sshKey", "privateKey": "not a key"}, "sshKey"),
        (["token"], "token"),
    ],
)
def test_an_answer_that_is_no_usable_credential_is_refused(answer: Any, kind: str) -> None:
    with pytest.raises(CredentialError):
        CloneCredential.from_answer(answer, kind)


def test_a_credential_never_shows_its_value_when_printed() -> None:
    credential = CloneCredential.from_answer(
        {"type": "token", "username": "x-access-token", "password": TOKEN}, "token"
    )
    assert TOKEN not in repr(credential) and TOKEN not in str(credential)


def test_a_tokens_helper_is_named_on_gits_argv_for_the_repositorys_origin_alone() -> None:
    credential = CloneCredential("token", username="x-access-token", password=TOKEN)
    access = CloneAccess(credential, "https://scm.example:8443/org/app.git")
    try:
        argv = access.argv(["git", "clone", "--", URL, "/w"])
        assert argv[:4] == ["git", "-c", "credential.helper=", "-c"]
        assert argv[4].startswith("credential.https://scm.example:8443.helper=!")
        assert not any(TOKEN in word for word in argv)
        # The helper reads what only git's processes open, and only while the access lasts.
        path = argv[4].split("cat ", 1)[1].split(";", 1)[0].strip("'")
        assert Path(path).read_text() == f"username=x-access-token\npassword={TOKEN}\n"
        assert os.stat(path).st_mode & 0o777 == 0o600
    finally:
        access.close()
    assert not _holds(Path(path), TOKEN)


def _holds(path: Path, value: str) -> bool:
    try:
        return value.encode() in path.read_bytes()
    except OSError:
        return False


def test_a_token_is_handed_to_http_urls_only() -> None:
    assert origin_of("http://127.0.0.1:8080/a/b.git") == "http://127.0.0.1:8080"
    assert origin_of("https://[::1]/a.git") == "https://[::1]"
    with pytest.raises(CredentialError):
        origin_of("git@github.com:org/app.git")


def test_the_launchers_tracing_and_agent_never_reach_git_with_a_credential() -> None:
    credential = CloneCredential("token", username="u", password=TOKEN)
    access = CloneAccess(credential, URL)
    try:
        base = {
            "PATH": "/bin",
            "GIT_TRACE_CURL": "/tmp/trace",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "credential.helper",
            "SSH_AUTH_SOCK": "/run/agent",
        }
        assert access.environment(base) == {"PATH": "/bin"}
    finally:
        access.close()


# --- real clones ----------------------------------------------------------------------------


def _repository(tmp_path: Path, commits: int, *, old: int = 0) -> tuple[Path, list[str]]:
    """A bare repository whose main holds `commits` commits, the first `old` of them made in
    2020; their shas, oldest first."""
    work = tmp_path / "work"
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=n", "-C", str(work)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    shas = []
    for n in range(commits):
        (work / "n.txt").write_text(f"{n}\n")
        subprocess.run([*git, "add", "."], check=True)
        dated = {"GIT_COMMITTER_DATE": f"2020-06-0{n + 1}T12:00:00Z"} if n < old else {}
        subprocess.run(
            [*git, "commit", "-qm", f"commit {n}"], check=True, env={**os.environ, **dated}
        )
        shas.append(subprocess.check_output([*git, "rev-parse", "HEAD"], text=True).strip())
    bare = tmp_path / "git" / "org" / "app.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare, shas


def _runner(
    tmp_path: Path,
    credential: dict[str, Any],
    asked: list[int],
    *,
    job_env: list[tuple[str, str]] | None = None,
    launcher_env: dict[str, str] | None = None,
) -> tuple[Runner, Collector]:
    workspace = Workspace(tmp_path / "ws", "app")
    workspace.prepare({})
    env = build_environment(
        base={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        launcher_vars=workspace.variables("build-token"),
        bin_dir=workspace.bin,
        job_environment=job_env or [],
        secrets={},
    )

    def ask() -> dict[str, Any]:
        asked.append(1)
        return credential

    reporter = Collector()
    runner = Runner(
        workspace=workspace,
        env=env,
        reporter=reporter,
        masker=Masker(["build-token"]),
        credentials=ask,
        launcher_env=launcher_env or {"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )
    return runner, reporter


def _files_holding(root: Path, value: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and _holds(p, value)]


def _handler(host: GitHost) -> type[BaseHTTPRequestHandler]:
    """An HTTP server of the host's repositories and nothing else."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if not serve_git(self, host):
                self.send_error(404)

        do_POST = do_GET

    return Handler


@pytest.mark.slow
def test_a_private_repository_is_cloned_with_the_token_no_step_log_or_file_sees(
    tmp_path: Path,
) -> None:
    bare, shas = _repository(tmp_path, 3)
    host = GitHost(repos={"org/app": bare}, private={"org/app"})
    host.credential = ("x-access-token", TOKEN)

    # A job that tries to get the credential written down by git, or sent through its own
    # proxy (here a closed port: the clone would fail): none of it reaches git.
    job_env = [
        ("GIT_SHALLOW_CLONE_DEPTH", "1"),
        ("http_proxy", "http://127.0.0.1:9"),
        ("GIT_TRACE_CURL", "$SD_ROOT_DIR/trace"),
        ("GIT_TRACE_REDACT", "0"),
        ("GIT_CONFIG_COUNT", "1"),
        ("GIT_CONFIG_KEY_0", "credential.helper"),
        ("GIT_CONFIG_VALUE_0", "store --file=$SD_ROOT_DIR/stored"),
    ]
    answer = {"type": "token", "username": "x-access-token", "password": TOKEN}
    asked: list[int] = []
    with serve(_handler(host)) as base_url:
        url = f"{base_url}/org/app.git"
        runner, out = _runner(tmp_path, answer, asked, job_env=job_env)
        # The build's commit is older than the depth of 1: it is fetched by its sha.
        checkout = Checkout(url, shas[0], "main", auth="token")
        result = runner.run(
            [Step("show", "cat n.txt; git rev-parse --is-shallow-repository; env")], checkout
        )
    setup = out.text("sd-setup-scm")
    assert result.status == "SUCCESS", setup
    assert out.text("show")[:2] == ["0", "true"]
    assert asked == [1]
    assert host.refused >= 1 and "x-access-token" in host.git_callers
    assert f"$ git clone --no-checkout --depth 1 --no-single-branch --branch main -- {url}" in (
        "\n".join(setup)
    )
    assert any(
        line.startswith("$ git -c advice.detachedHead=false") and "fetch" in line for line in setup
    )
    lines = [line for name in out.output for line in out.text(name)]
    assert not any(TOKEN in line for line in lines)
    # Nothing needed masking but the build token in the step's `env`: git never printed it.
    assert [line for line in lines if "****" in line] == ["SD_TOKEN=****"]
    assert _files_holding(tmp_path / "ws", TOKEN) == []
    assert not (tmp_path / "ws" / "trace").exists() and not (tmp_path / "ws" / "stored").exists()
    # Should git ever print it, the build's output masks it.
    assert runner.masker(f"url {TOKEN}".encode()) == b"url ****"


@pytest.mark.slow
def test_a_commit_the_server_will_not_send_by_its_sha_comes_with_the_whole_history(
    tmp_path: Path,
) -> None:
    bare, shas = _repository(tmp_path, 3)
    host = GitHost(repos={"org/app": bare}, protocol_v2=False)
    with serve(_handler(host)) as base_url:
        runner, out = _runner(tmp_path, {}, [], job_env=[("GIT_SHALLOW_CLONE_DEPTH", "1")])
        checkout = Checkout(f"{base_url}/org/app.git", shas[0], "main")
        result = runner.run([Step("show", "cat n.txt")], checkout)
    setup = out.text("sd-setup-scm")
    assert result.status == "SUCCESS", setup
    assert out.text("show") == ["0"]
    assert f"Fetching the whole history to find {shas[0]}." in setup


@pytest.mark.slow
@pytest.mark.parametrize(
    ("job_env", "commits"),
    [
        ([], 5),  # Screwdriver's default depth of 50 holds all five
        ([("GIT_SHALLOW_CLONE_DEPTH", "3")], 3),
        # A date wins over a depth: the three commits since, not four.
        ([("GIT_SHALLOW_CLONE_DEPTH", "4"), ("GIT_SHALLOW_CLONE_SINCE", "2021-01-01")], 3),
        ([("GIT_SHALLOW_CLONE", "false"), ("GIT_SHALLOW_CLONE_DEPTH", "1")], 5),
    ],
    ids=["default", "depth", "since", "whole"],
)
def test_the_jobs_shallow_clone_settings_decide_how_much_history_git_fetches(
    tmp_path: Path, job_env: list[tuple[str, str]], commits: int
) -> None:
    # Two commits of 2020, then three of today.
    bare, shas = _repository(tmp_path, 5, old=2)
    with serve(_handler(GitHost(repos={"org/app": bare}))) as base_url:
        runner, out = _runner(tmp_path, {}, [], job_env=job_env)
        checkout = Checkout(f"{base_url}/org/app.git", shas[-1], "main")
        result = runner.run([Step("count", "git rev-list --count HEAD")], checkout)
    assert result.status == "SUCCESS", out.text("sd-setup-scm")
    assert out.text("count") == [str(commits)]


@pytest.mark.slow
def test_a_deploy_key_reaches_ssh_as_a_private_file_that_is_gone_after_the_clone(
    tmp_path: Path,
) -> None:
    bare, shas = _repository(tmp_path, 2)
    record = tmp_path / "ssh-record"
    record.mkdir()
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "ssh").write_text(
        "#!/bin/sh\n"
        "# A stand-in for ssh: it records how git called it, then serves the repository.\n"
        f"rec={record}\n"
        'printf "%s\\n" "$@" > "$rec/argv"\n'
        "while [ $# -gt 0 ]; do\n"
        '  case "$1" in\n'
        "    -i) key=$2; shift ;;\n"
        '    -o) case "$2" in UserKnownHostsFile=*) cp "${2#*=}" "$rec/known" ;; esac; shift ;;\n'
        "  esac\n"
        "  shift\n"
        "done\n"
        'stat -L -c %a "$key" > "$rec/mode"\n'
        'sha256sum < "$key" | cut -d\' \' -f1 > "$rec/key.sha256"\n'
        f"exec git-upload-pack {bare}\n"
    )
    (fake / "ssh").chmod(0o755)
    pair = new_key_pair("sd-pipeline-1@test")
    known = "scm.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKnownHostKey\n"
    answer = {"type": "sshKey", "privateKey": pair.private, "knownHosts": known}
    launcher_env = {"PATH": f"{fake}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    asked: list[int] = []
    runner, out = _runner(tmp_path, answer, asked, launcher_env=launcher_env)
    checkout = Checkout("git@scm.example:org/app.git", shas[-1], "main", auth="sshKey")
    result = runner.run([Step("show", "cat n.txt")], checkout)
    setup = out.text("sd-setup-scm")
    assert result.status == "SUCCESS", setup
    assert out.text("show") == ["1"]
    argv = (record / "argv").read_text().splitlines()
    key_path = argv[argv.index("-i") + 1]
    assert argv[:2] == ["-F", "/dev/null"]
    assert {"IdentitiesOnly=yes", "BatchMode=yes", "StrictHostKeyChecking=yes"} <= set(argv)
    assert "git@scm.example" in argv
    assert (record / "mode").read_text().strip() == "600"
    expected = hashlib.sha256(pair.private.encode()).hexdigest()
    assert (record / "key.sha256").read_text().strip() == expected
    assert (record / "known").read_text() == known
    # The key was never a file of the workspace, and its memory is gone with the clone.
    assert not key_path.startswith(str(tmp_path))
    assert not _holds(Path(key_path), "PRIVATE KEY")
    body = pair.private.splitlines()[1]
    assert _files_holding(tmp_path / "ws", body) == []
    assert not any(body in line for line in setup)
    assert runner.masker(body.encode()) == b"****"


def test_a_refused_credential_fails_the_checkout_with_the_apis_reason(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws", "app")
    workspace.prepare({})
    reason = "The GitHub App 7 is not installed on o/app: install it on the repository."

    def refused() -> Any:
        raise CredentialError(
            f"POST /v4/builds/7/checkout-credential answered 409 ({reason})", reason
        )

    reporter = Collector()
    runner = Runner(
        workspace=workspace,
        env={"PATH": os.environ["PATH"]},
        reporter=reporter,
        credentials=refused,
    )
    result = runner.run([Step("build", "echo never")], Checkout(URL, SHA, "main", auth="token"))
    assert result.codes == {"sd-setup-scm": 1}
    assert reporter.text("sd-setup-scm") == [
        "Could not get the credential to clone with: POST /v4/builds/7/checkout-credential "
        f"answered 409 ({reason})."
    ]
    # The API's sentence is the build's status message too.
    assert (result.status, result.message) == ("FAILURE", reason)


def test_a_checkout_beside_a_build_container_logs_what_git_said(tmp_path: Path) -> None:
    """With an agent (Docker, Kubernetes, the sandbox) git writes into the agent's output
    stream, as the steps do: a failed clone says why."""
    workspace = Workspace(tmp_path / "ws", "app")
    workspace.prepare({})
    agent = Agent(prepare_control_dir(control_dir(workspace.root)))
    reporter = Collector()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    runner = Runner(workspace=workspace, env=env, reporter=reporter, agent=agent, launcher_env=env)
    missing = tmp_path / "missing.git"

    result = runner.run([Step("build", "echo never")], Checkout(str(missing)))

    assert result.codes == {"sd-setup-scm": 128}
    assert reporter.text("sd-setup-scm")[-1] == f"fatal: repository '{missing}' does not exist"

"""A local build owns nothing but its workspace: a red-team pipeline on the real local executor.

Each attempt prints `LEAK <what>` when it worked and `SAFE <what>` when it did not; the host
side is checked as well (files the launcher would have overwritten, meta it would have read).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from builds.logs import read_page
from builds.models import Build, BuildStatus, Step
from conftest import BASE_DIR, wait_until
from executors.launcher.sandbox import probe
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_event
from pipelines.services.pull_requests import start_pr_event

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(probe() is not None, reason=f"no sandbox here: {probe()}"),
]

HOST_SECRET = "host-only-7f3a9c"
OTHER_SECRET = "other-build-5e21d0"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The server's HOME, with a key the builds must not read."""
    home = tmp_path / "server-home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(f"{HOST_SECRET}\n")
    return home


@pytest.fixture
def stack_env(home: Path) -> dict[str, str]:
    return {"HOME": str(home)}


def _attempts(stack: Any, tmp_path: Path, home: Path) -> str:
    """The red team's probes, one shell line each."""
    data = stack.data_dir
    other = data / "workspaces" / "build-999999" / ".launcher"
    other.mkdir(parents=True)
    (other / "env-0").write_text(f"export SD_TOKEN={OTHER_SECRET}\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    probes = {
        "secret-key": f"cat {data}/secret_key || cat $SD_ROOT_DIR/../../secret_key",
        "data-dir": f"ls -A {data} | grep -v '^workspaces$' | grep -q .",
        "data-dir-relative": "ls -A $SD_ROOT_DIR/../.. | grep -v '^workspaces$' | grep -q .",
        "other-workspace": f"cat {other}/env-0 || cat $SD_ROOT_DIR/../build-999999/.launcher/env-0",
        "other-workspaces-listed": 'ls $SD_ROOT_DIR/.. | grep -v "^$(basename $SD_ROOT_DIR)$"',
        "server-environ": "cat /proc/[0-9]*/environ | tr '\\0' '\\n' | grep -q '^SD_SECRET_KEY='",
        "server-process": f"test -e /proc/{os.getpid()}/environ && ls /proc/{os.getpid()}",
        "ssh-key": f"cat {home}/.ssh/id_ed25519 || cat ~/.ssh/id_ed25519",
        "server-code": f"cat {BASE_DIR}/manage.py",
        "write-outside": f"echo x > {outside}/escaped",
        "write-system": "echo x > /etc/sd-escaped",
        "write-data-dir": "echo x > $SD_ROOT_DIR/../escaped",
        "docker-socket": "test -S /run/docker.sock || test -S /var/run/docker.sock",
        "capabilities": "grep -q '^CapEff:.*[1-9a-f]' /proc/self/status",
        "root": 'test "$(id -u)" = 0' if os.geteuid() == 0 else "false",
        "agent-fds": "for f in /proc/1/fd/*; do readlink $f; done | grep -F "
        f'{data} | grep -qvF "$SD_ROOT_DIR/"',
        "inheritable-caps": "grep -q '^CapInh:.*[1-9a-f]' /proc/self/status",
    }
    lines = [
        'attempt() { if (eval "$2") >/dev/null 2>&1; then echo "LEAK $1"; '
        'else echo "SAFE $1"; fi; }'
    ]
    lines += [f"attempt {name} {_sh(command)}" for name, command in probes.items()]
    return "\n".join(lines) + "\n"


def _files(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `root`: its owner and content."""
    return {
        str(path): (path.stat().st_uid, path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _yaml(steps: list[tuple[str, str]]) -> str:
    body = "".join(f"      - {name}: {json.dumps(command)}\n" for name, command in steps)
    return f"jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n    steps:\n{body}"


def _log(build: Build, step: str) -> list[str]:
    return [line["m"] for line in read_page(step=Step.objects.get(build=build, name=step)).lines]


def _everything(build: Build) -> dict[str, Any]:
    """What a failure message should show: the build's message and every step's log."""
    steps = {s.name: (s.code, _log(build, s.name)) for s in Step.objects.filter(build=build)}
    return {"message": build.status_message, "steps": steps}


def _finished(event: Event) -> Build:
    def done() -> Build | None:
        build = Build.objects.filter(event=event).first()
        if build is not None and build.is_finished:
            return build
        return None

    return wait_until(done, timeout=90, what="the build to finish")


def test_every_escape_fails_on_the_local_executor_while_the_build_still_works(
    stack: Any, make_repo: Any, tmp_path: Path, home: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text(f"{HOST_SECRET}\n")
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"stolen": HOST_SECRET}))
    state = "$SD_ROOT_DIR/.launcher"
    steps = [
        ("probe", _attempts(stack, tmp_path, home)),
        # The launcher writes each step's script into the workspace, and reads back the
        # folder a step ended in and the meta: point them at host files.
        (
            "plant",
            f"for k in 3 4 5 6; do ln -sf {victim} {state}/cmd-$k.sh; "
            f"ln -sf {victim} {state}/step-$k.sh; done; "
            f"trap - EXIT; ln -sf {victim} {state}/pwd-2; ln -sf {victim} {state}/env-2; "
            f"ln -sf {host_json} $SD_META_PATH",
        ),
        ("after", "pwd; echo still here"),
        ("meta", "meta set ordinary yes"),
        # A clone of a repository on this disk must not share its object files: rewriting
        # them would change what later builds of the pipeline check out and run.
        (
            "objects",
            "find $SD_SOURCE_DIR/.git/objects -type f | while read -r f; do "
            'chmod u+w "$f" && printf poison >> "$f" && echo "LEAK $f"; done 2>/dev/null; true',
        ),
    ]
    repo = make_repo({"screwdriver.yaml": _yaml(steps)})
    objects_before = _files(repo.bare / "objects")
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "alice"))
    build = _finished(event)

    probe_log = _log(build, "probe")
    assert [line for line in probe_log if line.startswith("LEAK")] == [], probe_log
    assert len([line for line in probe_log if line.startswith("SAFE")]) == 17, probe_log
    assert victim.read_text() == f"{HOST_SECRET}\n"
    assert not (tmp_path / "outside" / "escaped").exists()
    assert not (stack.data_dir / "workspaces" / "escaped").exists()
    assert not Path("/etc/sd-escaped").exists()
    assert _files(repo.bare / "objects") == objects_before
    build.refresh_from_db()
    assert "stolen" not in json.dumps(build.meta)
    for step in Step.objects.filter(build=build):
        assert not any(
            HOST_SECRET in line or OTHER_SECRET in line for line in _log(build, step.name)
        )


def test_an_ordinary_build_runs_in_the_sandbox_with_its_own_home_and_tmp(
    stack: Any, make_repo: Any
) -> None:
    steps = [
        ("build", 'echo "$HOME" > home.txt; touch /tmp/scratch; ls /tmp; git log --oneline -1'),
        ("keep", "export KEPT=yes; cd .."),
        ("later", 'echo "kept=$KEPT in $(basename $PWD)"; meta set version 1.2'),
        ("background", "sleep 30 & echo $! > $SD_ROOT_DIR/bg.pid"),
        ("alive", 'kill -0 "$(cat $SD_ROOT_DIR/bg.pid)" && echo "background still running"'),
    ]
    repo = make_repo({"screwdriver.yaml": _yaml(steps)})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "alice"))
    build = _finished(event)

    assert build.status == BuildStatus.SUCCESS, _everything(build)
    assert "scratch" in _log(build, "build")
    assert _log(build, "later") == ["kept=yes in src"]
    assert _log(build, "alive") == ["background still running"]
    assert build.meta.get("version") == 1.2 or build.meta.get("version") == "1.2"


@pytest.mark.parametrize("stack_env", [{"SD_LOCAL_SANDBOX_NETWORK": "none"}])
def test_an_operator_can_give_local_builds_no_network(stack: Any, make_repo: Any) -> None:
    steps = [("interfaces", "cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '")]
    repo = make_repo({"screwdriver.yaml": _yaml(steps)})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "alice"))
    build = _finished(event)

    assert build.status == BuildStatus.SUCCESS, _everything(build)
    assert _log(build, "interfaces") == ["lo"]


def test_a_job_asking_for_an_executor_the_server_does_not_allow_fails_and_says_which_are(
    stack: Any, make_repo: Any
) -> None:
    yaml = _yaml([("hello", "echo should not run")]).replace(
        "    image: alpine\n",
        "    image: alpine\n    annotations:\n      screwdriver.cd/executor: docker\n",
    )
    repo = make_repo({"screwdriver.yaml": yaml})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "alice"))
    build = _finished(event)

    assert build.status == BuildStatus.FAILURE
    assert "'docker' executor" in build.status_message
    assert "it allows: local" in build.status_message
    assert not Step.objects.filter(build=build, start_time__isnull=False).exists()


def _pull_request_build(make_repo: Any, *, fork: bool) -> tuple[Pipeline, Build]:
    """A pipeline that builds pull requests, and the build of one pull request to it."""
    yaml = _yaml([("hello", "echo pull request code ran")]).replace("[~commit]", "[~pr, ~commit]")
    repo = make_repo({"screwdriver.yaml": yaml})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    sha = repo.push({"README.md": "changed"}, "the pull request's commit")
    event = start_pr_event(
        pipeline=pipeline,
        pr_num=7,
        sha=sha,
        creator=Creator("Mallory", "mallory"),
        pr={"fork": fork, "title": "harmless", "ref": "feature", "url": ""},
    )
    assert event is not None
    build = _finished(event)
    assert build.status == BuildStatus.FAILURE
    assert not Step.objects.filter(build=build, start_time__isnull=False).exists()
    return pipeline, build


def test_a_pull_request_from_a_fork_does_not_run_on_the_local_executor(
    stack: Any, make_repo: Any
) -> None:
    _pipeline, build = _pull_request_build(make_repo, fork=True)
    assert "forks do not run on the local executor" in build.status_message


@pytest.mark.parametrize("stack_env", [{"SD_LOCAL_SANDBOX": "none"}])
def test_without_a_sandbox_no_pull_request_runs_on_the_local_executor(
    stack: Any, make_repo: Any
) -> None:
    pipeline, refused = _pull_request_build(make_repo, fork=False)
    assert "without a sandbox" in refused.status_message
    assert "SD_LOCAL_SANDBOX is none" in refused.status_message

    # The pipeline's own commits still build: they are the operator's trusted code.
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "alice"))
    assert _finished(event).status == BuildStatus.SUCCESS


def test_the_worker_says_in_one_line_at_start_that_local_builds_are_not_sandboxed(
    tmp_path: Path,
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "SD_DATA_DIR": str(tmp_path / "data"),
        "SD_LOCAL_SANDBOX": "none",
        "DJANGO_SETTINGS_MODULE": "screwdriver_site.settings",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "sd_worker"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert worker.stderr is not None
        first = worker.stderr.readline().decode()
    finally:
        os.killpg(worker.pid, 9)
        worker.wait(timeout=10)
    assert first.startswith("Local builds run without a sandbox (SD_LOCAL_SANDBOX is none)")
    assert "pull requests will not run on the local executor" in first


def _admin() -> User:
    return User.objects.create_user(username="alice", password="pw-alice-123")


def test_a_machine_without_bubblewrap_is_told_why(tmp_path: Path) -> None:
    reason = probe(bwrap=str(tmp_path / "no-bwrap"))
    assert reason is not None and reason.startswith("bubblewrap could not run")

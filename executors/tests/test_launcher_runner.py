"""The runner with real shells, real git and real process trees (no HTTP server needed)."""

from __future__ import annotations

import base64
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from executors.launcher.api import ApiClient
from executors.launcher.environment import build_environment
from executors.launcher.launch import ApiReporter, iso, teardown_seconds, timeout_message
from executors.launcher.logs import LogBatcher, Masker
from executors.launcher.runner import Checkout, Runner, Step
from executors.launcher.workspace import Workspace
from executors.tests.reporting import Collector

PROJECT = Path(__file__).resolve().parents[2]


def make_runner(
    tmp_path: Path,
    *,
    secrets: dict[str, str] | None = None,
    job_env: list[tuple[str, str]] | None = None,
    source_dir: str = "",
    base: dict[str, str] | None = None,
    **kwargs: object,
) -> tuple[Runner, Collector]:
    workspace = Workspace(tmp_path / "ws", "repo", source_dir)
    workspace.prepare({"seed": "from-parent"})
    env = build_environment(
        base={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **(base or {})},
        launcher_vars=workspace.variables("build-token"),
        bin_dir=workspace.bin,
        job_environment=job_env or [],
        secrets=secrets or {},
    )
    reporter = Collector()
    runner = Runner(
        workspace=workspace,
        env=env,
        reporter=reporter,
        masker=Masker([*(secrets or {}).values(), "build-token"]),
        **kwargs,  # type: ignore[arg-type]
    )
    return runner, reporter


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie has finished)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def test_exported_variables_and_directory_carry_over_between_steps(tmp_path: Path) -> None:
    runner, out = make_runner(tmp_path)
    result = runner.run(
        [
            Step("one", "export KEPT='a b'\nLOCAL=gone\nmkdir -p sub && cd sub"),
            Step("two", 'echo "$KEPT|${LOCAL:-unset}|$(basename "$PWD")"\nunset KEPT'),
            Step("three", 'echo "${KEPT:-unset} $SD_STEP_NAME"'),
        ]
    )
    assert result.status == "SUCCESS"
    assert out.text("two") == ["a b|unset|sub"]
    assert out.text("three") == ["unset three"]


def test_the_first_step_runs_in_the_source_dir_with_the_build_environment(
    tmp_path: Path,
) -> None:
    runner, out = make_runner(tmp_path, job_env=[("GREETING", "hi-$SD_BUILD_X"), ("X", "${HOME}")])
    runner.run([Step("one", 'pwd; echo "$X $SD_META_PATH"; command -v meta')])
    workspace = runner.workspace
    assert out.text("one") == [
        str(workspace.source),
        f"{tmp_path} {workspace.meta_path}",
        str(workspace.bin / "meta"),
    ]


def test_the_first_steps_pwd_is_the_source_dir_wherever_the_launcher_started(
    tmp_path: Path,
) -> None:
    # A container's first process, or the server, hands down PWD=/ and an OLDPWD.
    runner, out = make_runner(tmp_path, source_dir="app", base={"PWD": "/", "OLDPWD": "/tmp"})
    runner.run([Step("one", 'echo "$PWD ${OLDPWD:-none}"; pwd'), Step("two", 'echo "$PWD"')])
    source = str(runner.workspace.source)
    assert out.text("one") == [f"{source} none", source]
    assert out.text("two") == [source]


def test_set_e_ends_a_step_at_its_first_failing_command(tmp_path: Path) -> None:
    runner, out = make_runner(tmp_path)
    result = runner.run(
        [
            Step("one", "echo before\n(exit 3)\necho after"),
            Step("two", "echo never"),
        ]
    )
    assert result.status == "FAILURE"
    assert result.codes == {"one": 3}
    assert out.text("one") == ["before"]
    assert ("start", "two", None) not in out.events


def test_teardown_steps_run_last_and_see_the_first_failing_code(tmp_path: Path) -> None:
    runner, out = make_runner(tmp_path)
    result = runner.run(
        [
            Step("teardown-report", 'echo "code=$SD_STEP_EXIT_CODE"'),
            Step("build", "exit 7"),
            Step("test", "echo skipped"),
            Step("teardown-second", 'echo "again=$SD_STEP_EXIT_CODE"'),
        ]
    )
    assert [e for e in out.events if e[0] == "end"] == [
        ("end", "build", 7),
        ("end", "teardown-report", 0),
        ("end", "teardown-second", 0),
    ]
    assert out.text("teardown-report") == ["code=7"]
    assert out.text("teardown-second") == ["again=7"]
    assert result.status == "FAILURE"


def test_a_failing_teardown_fails_an_otherwise_green_build(tmp_path: Path) -> None:
    runner, out = make_runner(tmp_path)
    result = runner.run(
        [Step("build", "true"), Step("teardown-x", "echo $SD_STEP_EXIT_CODE; false")]
    )
    assert out.text("teardown-x") == ["0"]
    assert result.status == "FAILURE"


def test_setup_scm_clones_and_checks_out_the_sha(tmp_path: Path) -> None:
    repo = tmp_path / "repo.git"
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=n", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "file.txt").write_text("first\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    sha = subprocess.check_output([*git, "rev-parse", "HEAD"], text=True).strip()
    (repo / "file.txt").write_text("second\n")
    subprocess.run([*git, "commit", "-qam", "two"], check=True)

    runner, out = make_runner(tmp_path)
    result = runner.run(
        [Step("show", "cat file.txt; git rev-parse HEAD")], Checkout(str(repo), sha, "main")
    )
    assert result.status == "SUCCESS"
    assert out.events[:2] == [("start", "sd-setup-scm", None), ("end", "sd-setup-scm", 0)]
    assert out.text("show") == ["first", sha]


def monorepo(tmp_path: Path) -> tuple[Path, str]:
    """A repository with app/ (and a link to it, links/app) and the sha of its commit."""
    repo = tmp_path / "mono.git"
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=n", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "app").mkdir()
    (repo / "app" / "VERSION").write_text("1.2.3\n")
    (repo / "top.txt").write_text("top\n")
    (repo / "links").mkdir()
    (repo / "links" / "app").symlink_to("../app")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    return repo, subprocess.check_output([*git, "rev-parse", "HEAD"], text=True).strip()


def test_a_pipelines_folder_is_where_steps_start_and_sd_source_dir_points(
    tmp_path: Path,
) -> None:
    repo, sha = monorepo(tmp_path)
    runner, out = make_runner(tmp_path, source_dir="app")
    result = runner.run(
        [
            Step("where", 'pwd; cat VERSION; echo "$SD_SOURCE_DIR"; echo "$SD_CHECKOUT_DIR"'),
            Step("root", 'echo "$SD_ROOT_DIR"; cat "$SD_CHECKOUT_DIR/top.txt"'),
        ],
        Checkout(str(repo), sha, "main"),
    )
    workspace = runner.workspace
    assert result.status == "SUCCESS", out.events
    assert workspace.source == workspace.checkout / "app"
    assert out.text("where") == [
        str(workspace.checkout / "app"),
        "1.2.3",
        str(workspace.checkout / "app"),
        str(workspace.checkout),
    ]
    assert out.text("root") == [str(workspace.root), "top"]


@pytest.mark.parametrize("source_dir", ["missing", "top.txt", "links/app"])
def test_a_folder_the_commit_lacks_fails_the_checkout_and_says_so(
    tmp_path: Path, source_dir: str
) -> None:
    repo, sha = monorepo(tmp_path)
    runner, out = make_runner(tmp_path, source_dir=source_dir)
    result = runner.run([Step("build", "echo no")], Checkout(str(repo), sha, "main"))
    assert result.status == "FAILURE"
    assert result.codes == {"sd-setup-scm": 1}
    assert out.text("sd-setup-scm")[-1] == (
        f"The source directory {source_dir} is not a folder of the repository at {sha}: "
        "add it, or change the pipeline's checkout URL."
    )


def test_without_a_checkout_the_pipelines_folder_is_made_and_steps_start_there(
    tmp_path: Path,
) -> None:
    runner, out = make_runner(tmp_path, source_dir="a/b")
    assert runner.run([Step("where", "pwd")]).status == "SUCCESS"
    assert out.text("where") == [str(runner.workspace.checkout / "a" / "b")]


@pytest.mark.parametrize("path", ["/etc", "..", "a/../..", "a//b", "./a", "a/.", "a\nb"])
def test_a_launch_spec_with_a_folder_outside_the_checkout_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="is not a folder of the repository"):
        Workspace.safe_source_dir(path)
    assert Workspace.safe_source_dir("app/web/") == "app/web"
    assert Workspace.safe_source_dir(None) == ""


def test_a_failed_checkout_skips_user_steps_but_runs_teardown(tmp_path: Path) -> None:
    runner, out = make_runner(tmp_path)
    result = runner.run(
        [Step("build", "echo no"), Step("teardown-t", "echo $SD_STEP_EXIT_CODE")],
        Checkout(str(tmp_path / "missing.git"), "0" * 40),
    )
    assert result.status == "FAILURE"
    assert result.codes["sd-setup-scm"] != 0
    assert "build" not in result.codes
    assert out.text("teardown-t") == [str(result.codes["sd-setup-scm"])]


def test_non_utf8_bytes_reach_the_reporter_unchanged(tmp_path: Path) -> None:
    runner, out = make_runner(tmp_path)
    runner.run([Step("bytes", r"printf 'ok\377\376end\n'")])
    assert out.output["bytes"] == [b"ok\xff\xfeend"]


def test_secrets_and_the_token_are_masked_in_step_output(tmp_path: Path) -> None:
    runner, out = make_runner(tmp_path, secrets={"API_KEY": "s3cr3t-value"})
    runner.run([Step("leak", 'echo "key=$API_KEY token=$SD_TOKEN"; echo "$API_KEY" >&2')])
    assert out.text("leak") == ["key=**** token=****", "****"]


def test_the_meta_command_edits_the_build_meta(tmp_path: Path) -> None:
    runner, out = make_runner(tmp_path)
    runner.run([Step("one", "meta set a.b.c 1"), Step("two", "meta get a.b; meta get seed")])
    assert out.text("two") == ['{"c": "1"}', "from-parent"]
    assert runner.workspace.read_meta() == {"seed": "from-parent", "a": {"b": {"c": "1"}}}


def test_a_timeout_kills_the_step_runs_teardown_and_reports_timed_out(tmp_path: Path) -> None:
    runner, out = make_runner(tmp_path, deadline=time.monotonic() + 1.0)
    began = time.monotonic()
    result = runner.run(
        [Step("slow", "echo go; sleep 30"), Step("next", "true"), Step("teardown-t", "echo td")]
    )
    assert time.monotonic() - began < 8
    assert result.timed_out and result.stopped
    assert result.status == "FAILURE"
    assert result.codes["slow"] == 128 + signal.SIGTERM
    assert "next" not in result.codes
    assert out.text("teardown-t") == ["td"]


def test_a_stop_between_steps_skips_the_rest_but_not_teardown(tmp_path: Path) -> None:
    stop = threading.Event()
    runner, _out = make_runner(tmp_path, stop=stop)
    stop.set()
    result = runner.run([Step("build", "true"), Step("teardown-t", "echo td")])
    assert result.codes == {"teardown-t": 0}
    assert result.status == "FAILURE"


def test_teardown_after_a_stop_is_bounded(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    runner, _out = make_runner(tmp_path, stop=stop, teardown_budget=0.5, grace=0.2)
    began = time.monotonic()
    result = runner.run([Step("teardown-hang", "sleep 30"), Step("teardown-late", "true")])
    assert time.monotonic() - began < 5
    assert result.codes == {"teardown-hang": 128 + signal.SIGTERM}


def test_the_timeout_message_names_minutes() -> None:
    assert timeout_message(5400) == "Build timed out after 90 minutes"
    assert timeout_message(90) == "Build timed out after 1.5 minutes"
    assert timeout_message(1) == "Build timed out after 0.02 minutes"


DRIVER = r"""
import json, os, signal, sys, threading, time
from pathlib import Path
from executors.launcher import process
from executors.launcher.environment import build_environment
from executors.launcher.runner import Runner, Step
from executors.launcher.workspace import Workspace

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
sweep = process.set_child_subreaper()

class Quiet:
    def step_started(self, name, at): pass
    def lines(self, name, lines): pass
    def step_ended(self, name, at, code, last=False): pass

workspace = Workspace(Path(sys.argv[1]))
workspace.prepare({})
env = build_environment(base={"PATH": os.environ["PATH"], "PY": sys.executable},
    launcher_vars=workspace.variables("t"), bin_dir=workspace.bin, job_environment=[], secrets={})
mark = 'echo "$SD_STEP_EXIT_CODE" > "$SD_ROOT_DIR/teardown"'
steps = [Step("build", sys.argv[2]), Step("teardown-mark", mark)]
result = Runner(workspace=workspace, env=env, reporter=Quiet(), stop=stop, sweep=sweep).run(steps)
print(json.dumps({"codes": result.codes, "sweep": sweep}))
"""

TREE = r"""
sh -c 'trap "" TERM; echo $$ > "$SD_ROOT_DIR/ignorer"; while :; do sleep 0.1; done' &
"$PY" -c '
import os, sys, time
if os.fork(): sys.exit(0)
os.setsid()
if os.fork(): sys.exit(0)
signal = __import__("signal"); signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(os.environ["SD_ROOT_DIR"] + "/daemon", "w").write(str(os.getpid()))
time.sleep(1000)
'
wait
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and prctl")
def test_a_stop_ends_the_whole_tree_even_processes_that_ignore_sigterm_or_setsid(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ws"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(root), TREE],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        env={"PATH": os.environ["PATH"]},
    )
    try:
        pid_files = [root / "ignorer", root / "daemon"]
        deadline = time.monotonic() + 20
        while not all(p.exists() and p.read_text().strip() for p in pid_files):
            assert time.monotonic() < deadline, "the step never started its processes"
            time.sleep(0.05)
        pids = [int(p.read_text()) for p in pid_files]
        assert all(alive(pid) for pid in pids)
        began = time.monotonic()
        driver.send_signal(signal.SIGTERM)
        stdout, _ = driver.communicate(timeout=15)
        assert time.monotonic() - began < 10
    finally:
        if driver.poll() is None:
            driver.kill()
    survivors = [pid for pid in pids if alive(pid)]
    for pid in survivors:  # never leave a failed run's processes behind
        os.kill(pid, signal.SIGKILL)
    report = json.loads(stdout)
    assert report["sweep"] is True
    assert report["codes"]["build"] == 128 + signal.SIGTERM
    assert (root / "teardown").read_text().strip() == str(128 + signal.SIGTERM)
    assert survivors == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and prctl")
def test_background_processes_left_by_steps_are_ended_when_the_build_ends(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ws"
    script = 'sleep 1000 &\necho $! > "$SD_ROOT_DIR/ignorer"\necho 0 > "$SD_ROOT_DIR/daemon"'
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, str(root), script],
        cwd=PROJECT,
        capture_output=True,
        env={"PATH": os.environ["PATH"]},
        timeout=30,
        check=True,
    )
    assert json.loads(out.stdout)["codes"] == {"build": 0, "teardown-mark": 0}
    assert not alive(int((root / "ignorer").read_text()))


class FakeApi:
    """The HTTP edge: a tiny stand-in for the API that records what the launcher sends."""

    def __init__(
        self,
        spec: dict[str, object],
        *,
        heartbeat: str = "RUNNING",
        running: int = 200,
        status: str = "ABORTED",
    ):
        self.spec = spec
        self.heartbeat = heartbeat
        self.running = running
        self.status = status  # what GET /v4/builds/7 says
        self.calls: list[tuple[str, str, Any, str]] = []
        self.finished = threading.Event()
        # A request to `held_path` (or below it) is answered only once `release` is set.
        self.held_path = ""
        self.release = threading.Event()
        # How long a step report takes to answer (a real server takes 5-15 ms), and until when
        # (time.monotonic) step reports are refused with a 503, as by an API restarting.
        self.step_seconds = 0.0
        self.steps_down_until = 0.0
        self.taken_steps: list[Any] = []  # the bodies of the step reports answered 200
        self.unknown_steps: set[str] = set()  # step reports naming these are answered 404
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                auth = self.headers.get("Authorization", "")
                api.calls.append((self.command, self.path, body, auth))
                if api.held_path and self.path.startswith(api.held_path):
                    api.release.wait(10)
                steps = self.command == "PUT" and self.path == "/v4/builds/7/steps"
                if steps:
                    time.sleep(api.step_seconds)
                if steps and time.monotonic() < api.steps_down_until:
                    self._answer(503, {"message": "restarting"})
                elif self.path.endswith("/launch") and self.command == "POST":
                    self._answer(api.running, api.spec if api.running == 200 else {})
                elif self.path.endswith("/launch"):
                    self._answer(200, api.spec)
                elif self.path.endswith("/heartbeat"):
                    self._answer(200, {"status": api.heartbeat})
                elif self.path == "/v4/builds/7" and body == {"status": "RUNNING"}:
                    self._answer(api.running, {})
                elif self.command == "GET" and self.path == "/v4/builds/7":
                    self._answer(200, {"status": api.status})
                elif steps and api.unknown_steps & {report["name"] for report in body or []}:
                    self._answer(404, {"message": "no such step"})
                elif steps:
                    api.taken_steps.append(body)
                    self._answer(200, [])
                else:
                    self._answer(200, {})
                    if self.path == "/v4/builds/7":
                        api.finished.set()

            do_GET = do_PUT = do_POST = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def launch_spec(steps: list[dict[str, str]], **extra: object) -> dict[str, object]:
    return {
        "build": {"id": 7, "eventId": 3, "jobId": 2, "pipelineId": 1, "number": 1},
        "checkout": {},
        "steps": steps,
        "environment": [["SD_BUILD_ID", "7"], ["FOO", "$SD_BUILD_ID-x"]],
        "secrets": {"PASSWORD": "pa55"},
        "meta": {"parent": "yes"},
        "timeoutSeconds": 60,
        "heartbeatSeconds": 0.2,
        "shell": "/bin/sh",
        **extra,
    }


def launcher(api: FakeApi, workspace: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "executors.launcher",
        "--api-url",
        api.url,
        "--build-id",
        "7",
        "--workspace",
        str(workspace),
        *extra,
    ]


LAUNCHER_ENV = {"PATH": os.environ.get("PATH", ""), "SD_LAUNCHER_TOKEN": "tok-123"}


def wait_for_calls(api: FakeApi, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(api.calls) < count:
        assert time.monotonic() < deadline, f"the API got {len(api.calls)} requests, not {count}"
        time.sleep(0.01)


def step_requests(api: FakeApi) -> list[list[dict[str, Any]]]:
    """The bodies of the step-report requests the API got (each a list of reports)."""
    return [b for m, p, b, _a in api.calls if (m, p) == ("PUT", "/v4/builds/7/steps")]


def reporter_for(api: FakeApi) -> ApiReporter:
    """The launcher's step reporter for build 7 of `api`, its log batches thrown away."""
    return ApiReporter(ApiClient(api.url, "tok-123"), 7, LogBatcher(lambda name, payload: None))


def test_reports_that_come_while_one_request_is_on_its_way_go_together_in_the_next() -> None:
    api = FakeApi(launch_spec([]))
    api.held_path = "/v4/builds/7/steps"
    reporter = reporter_for(api)
    at = datetime.now(UTC)
    try:
        reporter.step_started("slow", at)
        wait_for_calls(api, 1)
        # The API is still answering the first report while the next step starts and ends.
        reporter.step_ended("slow", at, 0)
        reporter.step_started("fast", at)
        reporter.step_ended("fast", at, 3)
        time.sleep(0.1)
        assert len(api.calls) == 1, "a second request went while the first was on its way"
        api.release.set()
        wait_for_calls(api, 2)
        assert reporter.close() == []
    finally:
        api.close()
    assert step_requests(api) == [
        [{"name": "slow", "startTime": iso(at)}],
        # One entry per step: the fast one started and ended meanwhile.
        [
            {"name": "slow", "endTime": iso(at), "code": 0},
            {"name": "fast", "startTime": iso(at), "endTime": iso(at), "code": 3},
        ],
    ]


def test_reports_not_sent_when_the_steps_are_over_are_handed_back_one_per_step() -> None:
    api = FakeApi(launch_spec([]))
    api.held_path = "/v4/builds/7/steps"
    reporter = reporter_for(api)
    at = datetime.now(UTC)
    try:
        reporter.step_started("a", at)
        wait_for_calls(api, 1)
        # `a`'s start is on its way (the API holds it); the rest wait for it.
        reporter.step_ended("a", at, 0)
        reporter.step_started("b", at)
        reporter.step_ended("b", at, 1)
        reporter.step_started("c", at)
        threading.Timer(0.2, api.release.set).start()
        unsent = reporter.close()
    finally:
        api.close()
    assert step_requests(api) == [[{"name": "a", "startTime": iso(at)}]]
    assert unsent == [
        {"name": "a", "endTime": iso(at), "code": 0},
        {"name": "b", "startTime": iso(at), "endTime": iso(at), "code": 1},
        {"name": "c", "startTime": iso(at)},
    ]


def test_the_last_steps_end_is_kept_for_the_final_status() -> None:
    api = FakeApi(launch_spec([]))
    reporter = reporter_for(api)
    at = datetime.now(UTC)
    try:
        reporter.step_started("publish", at)
        wait_for_calls(api, 1)
        reporter.step_ended("publish", at, 0, last=True)
        time.sleep(0.2)
        unsent = reporter.close()
    finally:
        api.close()
    # The start went as soon as it came; the end waits for the final status, which follows.
    assert step_requests(api) == [[{"name": "publish", "startTime": iso(at)}]]
    assert unsent == [{"name": "publish", "endTime": iso(at), "code": 0}]


def test_a_step_the_api_does_not_know_costs_only_its_own_report() -> None:
    api = FakeApi(launch_spec([]))
    api.held_path = "/v4/builds/7/steps"
    api.unknown_steps = {"ghost"}
    reporter = reporter_for(api)
    at = datetime.now(UTC)
    try:
        reporter.step_started("a", at)
        wait_for_calls(api, 1)
        reporter.step_ended("a", at, 0)
        reporter.step_started("ghost", at)
        reporter.step_started("b", at)
        api.release.set()
        wait_for_calls(api, 5)
        assert reporter.close() == []
    finally:
        api.close()
    # Refused as a whole, the request is sent again one step at a time.
    assert api.taken_steps == [
        [{"name": "a", "startTime": iso(at)}],
        [{"name": "a", "endTime": iso(at), "code": 0}],
        [{"name": "b", "startTime": iso(at)}],
    ]


def test_the_launcher_speaks_the_protocol_from_launch_to_final_status(tmp_path: Path) -> None:
    api = FakeApi(
        launch_spec(
            [
                {"name": "build", "command": 'echo "$FOO $PASSWORD"; meta set out.x 1'},
                {"name": "teardown-t", "command": "echo done"},
            ]
        )
    )
    try:
        subprocess.run(
            launcher(api, tmp_path / "ws"), cwd=PROJECT, env=LAUNCHER_ENV, timeout=60, check=True
        )
    finally:
        api.close()
    assert {auth for *_rest, auth in api.calls} == {"Bearer tok-123"}
    method, path, final, _auth = api.calls[-1]
    assert (method, path) == ("PUT", "/v4/builds/7")
    carried = final.pop("steps", [])
    assert final == {"status": "SUCCESS", "meta": {"parent": "yes", "out": {"x": "1"}}}
    # What had not gone when the steps were over goes with the final status, one per step.
    reports = [
        (report.pop("name"), sorted(report))
        for report in [*(r for body in step_requests(api) for r in body), *carried]
    ]
    # Each step's start, then its end; one report of both when the step was over before its
    # start went out. The final status comes after all.
    for name in ("build", "teardown-t"):
        assert [keys for step, keys in reports if step == name] in (
            [["startTime"], ["code", "endTime"]],
            [["code", "endTime", "startTime"]],
        )
    logs = [b for m, p, b, _a in api.calls if p == "/v4/builds/7/steps/build/logs"]
    assert logs[0]["seq"] == 0 and logs[0]["firstLine"] == 0
    text = zlib.decompress(base64.b64decode(logs[0]["data"])).decode()
    assert (logs[0]["count"], text) == (1, "7-x ****")


TEN_STEPS = [{"name": f"s{i}", "command": f"echo s{i} one; echo s{i} two"} for i in range(10)]


def test_ten_quick_steps_are_reported_in_a_few_requests_each_end_after_its_log(
    tmp_path: Path,
) -> None:
    api = FakeApi(launch_spec(TEN_STEPS))
    api.step_seconds = 0.02  # about what the real server takes for one
    try:
        subprocess.run(
            launcher(api, tmp_path / "ws"), cwd=PROJECT, env=LAUNCHER_ENV, timeout=60, check=True
        )
    finally:
        api.close()
    final = api.calls[-1][2]
    assert final["status"] == "SUCCESS"
    requests = step_requests(api)
    # Twenty reports; those that gathered while one request was on its way went together.
    assert 1 <= len(requests) <= 5, requests
    sent = [r for body in requests for r in body] + final.get("steps", [])
    for i in range(10):
        mine = [r for r in sent if r["name"] == f"s{i}"]
        assert [sorted(r) for r in mine] in (
            [["name", "startTime"], ["code", "endTime", "name"]],
            [["code", "endTime", "name", "startTime"]],
        )
    # A step's end goes after its last log line was taken.
    for i, step in enumerate(f"s{i}" for i in range(10)):
        logged = [
            n
            for n, (_m, p, _b, _a) in enumerate(api.calls)
            if p == f"/v4/builds/7/steps/{step}/logs"
        ]
        ended = next(
            n
            for n, (m, p, b, _a) in enumerate(api.calls)
            if (m, p) in {("PUT", "/v4/builds/7/steps"), ("PUT", "/v4/builds/7")}
            and any(
                r["name"] == step and "endTime" in r
                for r in (b if p.endswith("steps") else b.get("steps", []))
            )
        )
        assert logged and max(logged) < ended, (i, logged, ended)


def test_step_reports_the_api_refuses_for_a_while_all_arrive_once_it_is_back(
    tmp_path: Path,
) -> None:
    api = FakeApi(launch_spec(TEN_STEPS[:3]))
    api.steps_down_until = time.monotonic() + 1.5
    try:
        done = subprocess.run(
            launcher(api, tmp_path / "ws"),
            cwd=PROJECT,
            env=LAUNCHER_ENV,
            timeout=60,
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        api.close()
    final = api.calls[-1][2]
    assert final["status"] == "SUCCESS"
    assert len(step_requests(api)) > len(api.taken_steps) >= 1, "nothing was refused"
    assert "resending until it does" in done.stderr
    taken = [r for body in api.taken_steps for r in body] + final.get("steps", [])
    for i in range(3):
        fields = set().union(*(set(r) for r in taken if r["name"] == f"s{i}"))
        assert fields == {"name", "startTime", "endTime", "code"}, (i, taken)


def test_a_detached_launcher_stops_when_the_heartbeat_says_aborted(tmp_path: Path) -> None:
    api = FakeApi(
        launch_spec(
            [{"name": "build", "command": "sleep 30"}, {"name": "teardown-t", "command": "true"}]
        ),
        heartbeat="ABORTED",
    )
    try:
        began = time.monotonic()
        printed = subprocess.run(
            launcher(api, tmp_path / "ws", "--detach"),
            cwd=PROJECT,
            env=LAUNCHER_ENV,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        pid = int(printed.strip())
        assert os.getpgid(pid) == pid
        assert api.finished.wait(15)
        assert time.monotonic() - began < 10
        gone_by = time.monotonic() + 5
        while alive(pid) and time.monotonic() < gone_by:
            time.sleep(0.05)
        assert not alive(pid)
    finally:
        api.close()
    final = api.calls[-1][2]
    assert final["status"] == "FAILURE"
    reports = [r for body in step_requests(api) for r in body] + final.get("steps", [])
    ended = [report["code"] for report in reports if "code" in report]
    assert ended == [128 + signal.SIGTERM, 0]


def test_a_build_aborted_before_it_started_runs_nothing(tmp_path: Path) -> None:
    api = FakeApi(launch_spec([{"name": "build", "command": "touch ran"}]), running=409)
    try:
        result = subprocess.run(
            launcher(api, tmp_path / "ws"), cwd=PROJECT, env=LAUNCHER_ENV, timeout=30
        )
    finally:
        api.close()
    assert result.returncode == 0
    # The 409 could answer a resend of its own: it asks how the build stands, then stops.
    assert [(m, p) for m, p, _b, _a in api.calls] == [
        ("POST", "/v4/builds/7/launch"),
        ("GET", "/v4/builds/7"),
    ]
    assert not list((tmp_path / "ws").rglob("ran"))


def test_a_409_to_a_resent_running_report_the_server_had_taken_still_runs_the_build(
    tmp_path: Path,
) -> None:
    api = FakeApi(
        launch_spec([{"name": "build", "command": "touch ran"}]), running=409, status="RUNNING"
    )
    try:
        result = subprocess.run(
            launcher(api, tmp_path / "ws"), cwd=PROJECT, env=LAUNCHER_ENV, timeout=60
        )
    finally:
        api.close()
    assert result.returncode == 0
    final = [b for m, p, b, _a in api.calls if m == "PUT" and p == "/v4/builds/7"][-1]
    assert final["status"] == "SUCCESS"
    assert list((tmp_path / "ws").rglob("ran"))
    # Its first start had landed: it reads the spec again rather than starting twice.
    assert [(m, p) for m, p, _b, _a in api.calls][:3] == [
        ("POST", "/v4/builds/7/launch"),
        ("GET", "/v4/builds/7"),
        ("GET", "/v4/builds/7/launch"),
    ]


@pytest.mark.parametrize(
    ("spec", "seconds"),
    [
        ({}, 60.0),
        ({"teardownSeconds": 90}, 90.0),
        ({"teardownSeconds": 0}, 60.0),
        ({"teardownSeconds": True}, 60.0),
        ({"teardownSeconds": "90"}, 60.0),
    ],
)
def test_the_teardown_budget_is_the_specs_grace_else_sixty_seconds(
    spec: dict[str, object], seconds: float
) -> None:
    assert teardown_seconds(spec) == seconds

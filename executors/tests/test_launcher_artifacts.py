"""sd-teardown-artifacts in the launcher: what it finds, what it refuses, what it sends.

The folder is walked on a real disk with real links and FIFOs; the API is the edge, a small
HTTP server in a thread that keeps what each PUT carried (the server's side of the route has
its own tests in builds/tests/test_artifact_uploads.py, and the real thing runs end to end in
builds/tests/test_artifacts_end_to_end.py).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from executors.launcher.api import ApiClient
from executors.launcher.artifacts import (
    Caps,
    Publisher,
    find_files,
    masked_environment,
    refusal,
    size_text,
    zip_requested,
)
from executors.launcher.environment import build_environment
from executors.launcher.logs import Masker
from executors.launcher.runner import Runner, Step
from executors.launcher.workspace import Workspace
from executors.tests.reporting import Collector

BIG = 1 << 30


class UploadApi:
    """Takes PUT /v4/builds/7/artifacts/PATH and /artifacts.zip; keeps the bodies by path.

    `answers` lists statuses to give, in order, before answering 201 to everything."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.zips: list[bytes] = []
        self.requests: list[tuple[str, str]] = []
        self.answers = list(answers or [])
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                api.requests.append((self.path, self.headers.get("Content-Type", "")))
                status = api.answers.pop(0) if api.answers else 201
                answer: dict[str, Any] = {"message": f"refused with {status}"}
                if status == 201 and self.path.endswith("/artifacts.zip"):
                    api.zips.append(body)
                    with zipfile.ZipFile(io.BytesIO(body)) as archive:
                        names = [i.filename for i in archive.infolist() if not i.is_dir()]
                        for name in names:
                            api.files[name] = archive.read(name)
                    answer = {"files": len(names)}
                elif status == 201:
                    prefix = "/v4/builds/7/artifacts/"
                    api.files[unquote(self.path.removeprefix(prefix))] = body
                    answer = {"size": len(body)}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[UploadApi]:
    server = UploadApi()
    yield server
    server.close()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws", "repo")
    ws.prepare({})
    return ws


def publisher(
    api: UploadApi,
    workspace: Workspace,
    *,
    caps: Caps | None = None,
    zip_files: bool = False,
    environment: list[dict[str, str]] | None = None,
    one_file_a_request: bool = False,
) -> Publisher:
    client = ApiClient(api.url, "tok", give_up_at=None)
    return Publisher(
        client=client,
        build_id=7,
        caps=caps or Caps(BIG, BIG),
        workspace=workspace,
        environment=environment or [{"SD_BUILD_ID": "7"}],
        zip_files=zip_files,
        patience=lambda: 5.0,
        # The uploads of a folder too big for one quiet zip (the others' default).
        **({"one_zip_up_to": (0, 0)} if one_file_a_request else {}),
    )


def fill(folder: Path, outside: Path) -> dict[str, bytes]:
    """A folder as a build leaves it: files, a nested folder, links out and a FIFO."""
    files = {
        "report.txt": b"all green\n",
        "site/index.html": b"<h1>report</h1>",
        "site/img/pixel.png": bytes.fromhex("89504e470d0a1a0a") + os.urandom(100),
        "big.bin": os.urandom(512 * 1024 + 17),
    }
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    outside.mkdir(exist_ok=True)
    (outside / "secret").write_text("server secret")
    (folder / "shadow").symlink_to(outside / "secret")
    (folder / "data-dir").symlink_to(outside)
    os.mkfifo(folder / "pipe")
    return files


def published(api: UploadApi) -> dict[str, bytes]:
    reports = {"steps.json", "environment.json", "manifest.txt"}
    return {k: v for k, v in api.files.items() if k not in reports}


def test_the_walk_finds_regular_files_in_order_and_never_follows_a_link(tmp_path: Path) -> None:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    files = fill(folder, tmp_path / "outside")
    said: list[str] = []
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        found, problems = find_files(fd, said.append)
    finally:
        os.close(fd)
    assert [(f.path, f.size) for f in found] == sorted((k, len(v)) for k, v in files.items())
    assert problems == 0
    assert "shadow: skipped: a symbolic link is never followed." in said
    assert "data-dir: skipped: a symbolic link is never followed." in said
    assert "pipe: skipped: not a regular file." in said


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("a\nb", "control character"),
        ("a\\b", "backslash"),
        ("x" * 1025, "longer than 1024 bytes"),
        ("caf\udce9", "not UTF-8"),
    ],
)
def test_a_name_the_server_cannot_take_is_refused_before_sending(path: str, why: str) -> None:
    assert why in (refusal(path) or "")
    assert refusal("résumé final?.txt") is None


def test_sizes_read_exactly_and_in_units() -> None:
    assert size_text(12) == "12 bytes"
    assert size_text(52428800) == "52428800 bytes (50.0 MiB)"
    assert size_text(5 * 1024**3) == "5368709120 bytes (5.0 GiB)"


def test_zip_mode_is_what_screwdriver_reads() -> None:
    assert zip_requested({"SD_ZIP_ARTIFACTS": "true"})
    assert not zip_requested({"SD_ZIP_ARTIFACTS": "false"}) and not zip_requested({})


def test_the_environment_report_masks_secrets_the_token_and_values_holding_them() -> None:
    env = {"SD_BUILD_ID": "7", "TOKEN": "s3cr3t-value", "URL": "https://x:s3cr3t-value@h", "P": "1"}
    masker = Masker(["s3cr3t-value", "tok-abc"])
    env["SD_TOKEN"] = "tok-abc"
    report = masked_environment(
        ["SD_BUILD_ID", "URL", "SD_TOKEN", "TOKEN", "MISSING"],
        env,
        {"SD_TOKEN", "TOKEN"},
        masker.text,
    )
    assert report == [
        {"SD_BUILD_ID": "7"},
        {"URL": "https://x:****@h"},
        {"SD_TOKEN": "****"},
        {"TOKEN": "****"},
    ]


def test_every_regular_file_is_uploaded_byte_for_byte_with_the_reports(
    api: UploadApi, workspace: Workspace, tmp_path: Path
) -> None:
    files = fill(workspace.artifacts, tmp_path / "outside")
    said: list[str] = []
    steps = [{"name": "build", "command": "make", "code": 0, "startTime": "t0", "endTime": "t1"}]
    code = publisher(api, workspace, one_file_a_request=True).publish(
        steps, said.append, lambda: False
    )
    assert code == 0, said
    assert published(api) == files
    assert json.loads(api.files["steps.json"]) == steps
    assert json.loads(api.files["environment.json"]) == [{"SD_BUILD_ID": "7"}]
    manifest = api.files["manifest.txt"].decode().splitlines()
    assert manifest == sorted(
        f"./{p}" for p in [*files, "steps.json", "environment.json", "manifest.txt"]
    )
    assert all(t == "application/octet-stream" for _p, t in api.requests)
    assert (
        said[-1]
        == f"Published {len(files) + 3} files, "
        + size_text(sum(len(v) for v in api.files.values()))
        + "."
    )
    assert "server secret" not in json.dumps({k: v.decode("latin-1") for k, v in api.files.items()})


def test_a_name_with_spaces_and_accents_is_sent_encoded_and_arrives_whole(
    api: UploadApi, workspace: Workspace
) -> None:
    (workspace.artifacts / "résumé final?.txt").write_text("cv")
    sending = publisher(api, workspace, one_file_a_request=True)
    assert sending.publish([], print, lambda: False) == 0
    assert api.files["résumé final?.txt"] == b"cv"
    assert any("r%C3%A9sum%C3%A9%20final%3F.txt" in p for p, _t in api.requests)


def test_files_over_the_caps_are_named_left_out_and_fail_the_step(
    api: UploadApi, workspace: Workspace
) -> None:
    (workspace.artifacts / "a.bin").write_bytes(b"a" * 3000)
    (workspace.artifacts / "b.bin").write_bytes(b"b" * 6000)
    (workspace.artifacts / "c.bin").write_bytes(b"c" * 4000)
    said: list[str] = []
    caps = Caps(max_file_bytes=5000, max_build_bytes=6000)
    code = publisher(api, workspace, caps=caps).publish([], said.append, lambda: False)
    assert code == 1
    assert published(api) == {"a.bin": b"a" * 3000}
    assert any(
        line.startswith("b.bin: not published: 6000 bytes (5.9 KiB) is over the cap of 5000")
        and "SD_ARTIFACTS_MAX_FILE_BYTES" in line
        for line in said
    ), said
    assert any(
        line.startswith("c.bin: not published: with it the build's artifacts would pass")
        and "SD_ARTIFACTS_MAX_BUILD_BYTES" in line
        for line in said
    ), said
    assert said[-1] == "2 file(s) of $SD_ARTIFACTS_DIR were not published: see above."
    assert b"./c.bin" not in api.files["manifest.txt"]


def test_zip_mode_sends_one_zip_without_links(
    api: UploadApi, workspace: Workspace, tmp_path: Path
) -> None:
    files = fill(workspace.artifacts, tmp_path / "outside")
    said: list[str] = []
    code = publisher(api, workspace, zip_files=True).publish([], said.append, lambda: False)
    assert code == 0, said
    assert [p for p, _t in api.requests] == ["/v4/builds/7/artifacts.zip"]
    assert api.requests[0][1] == "application/zip"
    assert published(api) == files
    assert set(api.files) == {*files, "steps.json", "environment.json", "manifest.txt"}
    assert not (workspace.state / "artifacts.zip").exists()
    assert any(line.endswith("in one zip.") for line in said)


@pytest.mark.slow  # waits for the back-off
def test_an_upload_the_api_did_not_take_is_resent(workspace: Workspace) -> None:
    api = UploadApi(answers=[503])
    try:
        (workspace.artifacts / "a.txt").write_text("x")
        said: list[str] = []
        assert publisher(api, workspace).publish([], said.append, lambda: False) == 0
    finally:
        api.close()
    assert api.files["a.txt"] == b"x"
    assert any("resending until it does" in line for line in said)


def test_a_refusal_is_logged_with_the_servers_words_and_fails_the_step(
    workspace: Workspace,
) -> None:
    api = UploadApi(answers=[413])
    try:
        (workspace.artifacts / "a.txt").write_text("x")
        said: list[str] = []
        sending = publisher(api, workspace, one_file_a_request=True)
        assert sending.publish([], said.append, lambda: False) == 1
    finally:
        api.close()
    # Up to four files go at once, so the first to arrive (the one refused) may be any of them.
    names = ["manifest.txt", "environment.json", "steps.json", "a.txt"]
    refused = [line for line in said if line.endswith(": not published: refused with 413")]
    assert len(refused) == 1, said
    assert refused[0].split(":")[0] in names
    assert sorted(p.rsplit("/", 1)[-1] for p, _t in api.requests) == sorted(names)
    assert any(line.startswith("Published 3 files") for line in said), said


def test_once_the_build_has_ended_nothing_more_is_sent(workspace: Workspace) -> None:
    # An ended build's server answers 409 to every upload, those already on their way too.
    api = UploadApi(answers=[409] * 5)
    try:
        for name in ("a.txt", "b.txt"):
            (workspace.artifacts / name).write_text(name)
        said: list[str] = []
        sending = publisher(api, workspace, one_file_a_request=True)
        assert sending.publish([], said.append, lambda: False) == 1
    finally:
        api.close()
    # Four went at once (the manifest, the reports and a.txt); after the 409 nothing more.
    assert sorted(p.rsplit("/", 1)[-1] for p, _t in api.requests) == [
        "a.txt",
        "environment.json",
        "manifest.txt",
        "steps.json",
    ]
    assert "manifest.txt: not published: refused with 409" in said
    assert "4 more file(s) not published." in said


def test_a_small_folder_goes_in_one_quiet_zip(api: UploadApi, workspace: Workspace) -> None:
    (workspace.artifacts / "report.txt").write_text("all green\n")
    said: list[str] = []
    assert publisher(api, workspace).publish([], said.append, lambda: False) == 0, said
    # One request for the four files, and the log reads as for four uploads.
    assert [p for p, _t in api.requests] == ["/v4/builds/7/artifacts.zip"]
    assert sorted(api.files) == ["environment.json", "manifest.txt", "report.txt", "steps.json"]
    assert api.files["report.txt"] == b"all green\n"
    assert said == [f"Published 4 files, {size_text(sum(len(v) for v in api.files.values()))}."]
    assert not (workspace.state / "artifacts.zip").exists()


def test_files_dated_outside_a_zips_clock_are_published(
    api: UploadApi, workspace: Workspace
) -> None:
    for name, when in (("future.txt", 7_258_118_400), ("past.txt", 0)):  # 2200, 1970
        (workspace.artifacts / name).write_text(name)
        os.utime(workspace.artifacts / name, (when, when))
    said: list[str] = []
    assert publisher(api, workspace).publish([], said.append, lambda: False) == 0, said
    assert api.files["future.txt"] == b"future.txt" and api.files["past.txt"] == b"past.txt"
    with zipfile.ZipFile(io.BytesIO(api.zips[0])) as archive:
        years = {info.filename: info.date_time[0] for info in archive.infolist()}
    assert years["future.txt"] == 2107 and years["past.txt"] == 1980


def test_a_refused_small_zip_is_sent_again_file_by_file(workspace: Workspace) -> None:
    api = UploadApi(answers=[404])  # a server without the zip route
    try:
        (workspace.artifacts / "report.txt").write_text("ok")
        said: list[str] = []
        assert publisher(api, workspace).publish([], said.append, lambda: False) == 0, said
    finally:
        api.close()
    paths = [p.rsplit("/", 1)[-1] for p, _t in api.requests]
    assert paths[0] == "artifacts.zip"
    assert sorted(paths[1:]) == ["environment.json", "manifest.txt", "report.txt", "steps.json"]
    assert api.files["report.txt"] == b"ok" and said[-1].startswith("Published 4 files")


def test_a_small_zip_refused_because_the_build_ended_is_not_sent_again(
    workspace: Workspace,
) -> None:
    api = UploadApi(answers=[409])
    try:
        said: list[str] = []
        assert publisher(api, workspace).publish([], said.append, lambda: False) == 1
    finally:
        api.close()
    assert [p for p, _t in api.requests] == ["/v4/builds/7/artifacts.zip"]
    assert "Nothing was published: refused with 409" in said


def test_a_link_in_place_of_the_folder_publishes_nothing(
    api: UploadApi, workspace: Workspace, tmp_path: Path
) -> None:
    workspace.artifacts.rmdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret").write_text("s")
    workspace.artifacts.symlink_to(tmp_path / "elsewhere")
    said: list[str] = []
    assert publisher(api, workspace).publish([], said.append, lambda: False) == 1
    assert api.requests == [] and said[-1] == "Nothing was published."


# --- in the runner ----------------------------------------------------------------------------


def make_runner(workspace: Workspace, api: UploadApi, **kwargs: Any) -> tuple[Runner, Collector]:
    env = build_environment(
        base={"PATH": os.environ["PATH"]},
        launcher_vars=workspace.variables("tok"),
        bin_dir=workspace.bin,
        job_environment=[],
        secrets={},
    )
    out = Collector()
    runner = Runner(
        workspace=workspace, env=env, reporter=out, publisher=publisher(api, workspace), **kwargs
    )
    return runner, out


def test_the_runner_publishes_after_teardown_and_reports_every_step(
    api: UploadApi, workspace: Workspace
) -> None:
    runner, out = make_runner(workspace, api)
    result = runner.run(
        [
            Step("build", 'echo built > "$SD_ARTIFACTS_DIR/out.txt"; false'),
            Step("skipped", "true"),
            Step("teardown-t", 'echo td >> "$SD_ARTIFACTS_DIR/out.txt"'),
        ]
    )
    assert [e for e in out.events if e[0] == "end"] == [
        ("end", "build", 1),
        ("end", "teardown-t", 0),
        ("end", "sd-teardown-artifacts", 0),
    ]
    # Nothing follows the artifacts step: the reporter may keep its end for the final status.
    assert out.last == "sd-teardown-artifacts"
    assert result.codes["sd-teardown-artifacts"] == 0
    assert api.files["out.txt"] == b"built\ntd\n"
    report = json.loads(api.files["steps.json"])
    assert [(s["name"], s["code"]) for s in report] == [
        ("build", 1),
        ("skipped", None),
        ("teardown-t", 0),
        ("sd-teardown-artifacts", None),
    ]
    assert report[0]["command"].startswith("echo built") and report[0]["endTime"].endswith("Z")
    assert report[3]["startTime"] and report[1]["startTime"] is None
    assert out.text("sd-teardown-artifacts")[-1].startswith("Published 4 files")


def test_a_failed_publication_fails_an_otherwise_green_build(workspace: Workspace) -> None:
    api = UploadApi(answers=[413] * 10)
    try:
        runner, _out = make_runner(workspace, api)
        result = runner.run([Step("build", "true")])
    finally:
        api.close()
    assert result.codes == {"build": 0, "sd-teardown-artifacts": 1}
    assert result.status == "FAILURE"


def test_a_stopped_build_publishes_nothing(api: UploadApi, workspace: Workspace) -> None:
    stop = threading.Event()
    stop.set()
    runner, out = make_runner(workspace, api, stop=stop)
    result = runner.run([Step("build", "true"), Step("teardown-t", "true")])
    assert "sd-teardown-artifacts" not in result.codes
    assert ("start", "sd-teardown-artifacts", None) not in out.events
    assert api.requests == []


def test_the_sha_of_a_big_file_survives_the_trip(api: UploadApi, workspace: Workspace) -> None:
    data = os.urandom(4 * 1024 * 1024 + 3)
    (workspace.artifacts / "big.bin").write_bytes(data)
    assert publisher(api, workspace).publish([], print, lambda: False) == 0
    assert hashlib.sha256(api.files["big.bin"]).hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.slow  # waits for the build's timeout
def test_a_timed_out_build_still_publishes_what_it_left(
    api: UploadApi, workspace: Workspace
) -> None:
    runner, _out = make_runner(workspace, api, deadline=time.monotonic() + 1.0, grace=0.2)
    result = runner.run([Step("slow", 'echo partial > "$SD_ARTIFACTS_DIR/partial.txt"; sleep 30')])
    assert result.timed_out
    assert result.codes["sd-teardown-artifacts"] == 0
    assert api.files["partial.txt"] == b"partial\n"
    report = json.loads(api.files["steps.json"])
    assert report[0]["name"] == "slow" and report[0]["code"] == 143

"""The template-* commands on a build's PATH, as a local build runs them and through the shell
clients a container runs (the launcher answers those), against a fake API in a thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from executors.launcher import template_commands
from executors.launcher.agent import prepare_control_dir
from executors.launcher.metaserver import MetaServer
from executors.launcher.workspace import Workspace

SD_TEMPLATE = "namespace: ns\nname: tpl\nversion: '1.0'\n# trailing spaces kept:  \n"


class FakeApi:
    """Writes down each request; answers as our API would for a publish, a tag or a refusal."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str, Any]] = []
        self.refuse = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                auth = self.headers.get("Authorization", "")
                api.requests.append((self.command, self.path, auth, body))
                status, answer = api.route(self.command, self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if self.refuse:
            return 403, {"statusCode": 403, "message": "Not allowed to publish this template"}
        if (method, path) == ("POST", "/v4/templates"):
            return 201, {"namespace": "ns", "name": "tpl", "version": "1.0.4"}
        if (method, path) in {
            ("POST", "/v4/validator/template"),
            ("POST", "/v4/pipeline/template/validate"),
        }:
            errors = (
                [] if "maintainer" in body["yaml"] else [{"message": '"maintainer" is required'}]
            )
            return 200, {"errors": errors, "template": {}}
        if method == "GET" and path.startswith("/v4/templates/ns%2Ftpl?"):
            return 200, [{"version": "1.0.4"}, {"version": "1.0.3"}]
        if (method, path) == ("POST", "/v4/pipeline/template"):
            return 201, {"id": 31, "templateId": 9, "version": "2.1.0"}
        if (method, path) == ("GET", "/v4/pipeline/template/9"):
            return 200, {"id": 9, "namespace": "acme", "name": "node"}
        if method == "GET" and path.startswith("/v4/pipeline/templates/acme/node/versions?"):
            return 200, [{"version": "2.1.0"}, {"version": "2.0.0"}]
        return 200, {}


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi()
    yield server
    server.server.shutdown()
    server.server.server_close()


def run_local(
    bin_dir: Path, cwd: Path, api: FakeApi, *argv: str
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "SD_API_URL": f"{api.url}/v4", "SD_TOKEN": "build-token"}
    return subprocess.run(
        [str(bin_dir / argv[0]), *argv[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_local_build_publishes_and_tags_with_its_own_token(tmp_path: Path, api: FakeApi) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    template_commands.install(bin_dir, sys.executable)
    (tmp_path / "sd-template.yaml").write_text(SD_TEMPLATE)

    done = run_local(bin_dir, tmp_path, api, "template-publish", "--tag", "stable")

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "Template ns/tpl@1.0.4 was successfully published and tagged as stable\n"
    assert api.requests == [
        ("POST", "/v4/templates", "Bearer build-token", {"yaml": SD_TEMPLATE}),
        ("PUT", "/v4/templates/ns%2Ftpl/tags/stable", "Bearer build-token", {"version": "1.0.4"}),
    ]


def test_tag_without_a_version_takes_the_newest_and_json_says_what_it_did(
    tmp_path: Path, api: FakeApi
) -> None:
    template_commands.install(tmp_path, sys.executable)

    done = run_local(tmp_path, tmp_path, api, "template-tag", "-n", "ns/tpl", "-t", "beta", "-j")

    assert json.loads(done.stdout) == {"name": "ns/tpl", "version": "1.0.4", "tag": "beta"}
    assert [r[:2] for r in api.requests] == [
        ("GET", "/v4/templates/ns%2Ftpl?count=1"),
        ("PUT", "/v4/templates/ns%2Ftpl/tags/beta"),
    ]


def test_a_local_build_publishes_and_tags_a_pipeline_template(tmp_path: Path, api: FakeApi) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    template_commands.install(bin_dir, sys.executable)
    (tmp_path / "sd-template.yaml").write_text(SD_TEMPLATE)

    published = run_local(bin_dir, tmp_path, api, "pipeline-template-publish")
    environ = {"SD_API_URL": api.url, "SD_TOKEN": "build-token"}
    tag_argv = ["--namespace", "acme", "-n", "node", "--tag", "stable", "--json"]
    tagged = template_commands.run("pipeline-template-tag", tag_argv, environ, None, "f")
    removed = template_commands.run(
        "pipeline-template-remove", ["--namespace=acme", "--name=node"], environ, None, "f"
    )
    usage = template_commands.run(
        "pipeline-template-remove-tag", ["--name", "node"], environ, None, "f"
    )

    assert (published.returncode, published.stderr) == (0, "")
    assert published.stdout == (
        "Pipeline template acme/node@2.1.0 was successfully published and tagged as latest\n"
    )
    assert json.loads(tagged[1]) == {
        "namespace": "acme",
        "name": "node",
        "version": "2.1.0",
        "tag": "stable",
    }
    assert removed == (0, "Pipeline template acme/node was successfully removed\n", "")
    assert usage[0] == 2
    assert usage[2].startswith("usage: pipeline-template-remove-tag --namespace NS")
    assert [r[:2] for r in api.requests] == [
        ("POST", "/v4/pipeline/template"),
        ("GET", "/v4/pipeline/template/9"),
        ("PUT", "/v4/pipeline/template/acme/node/tags/latest"),
        ("GET", "/v4/pipeline/templates/acme/node/versions?count=1"),
        ("PUT", "/v4/pipeline/template/acme/node/tags/stable"),
        ("DELETE", "/v4/pipeline/templates/acme/node"),
    ]
    assert api.requests[0][2:] == ("Bearer build-token", {"yaml": SD_TEMPLATE})


def test_errors_say_what_went_wrong_and_exit_non_zero(tmp_path: Path, api: FakeApi) -> None:
    environ = {"SD_API_URL": api.url, "SD_TOKEN": "t"}

    missing = template_commands.run("template-publish", [], environ, None, "./sd-template.yaml")
    usage = template_commands.run("template-tag", ["--name", "x"], environ, "", "f")
    invalid = template_commands.run("template-validate", [], environ, "name: x\n", "f")
    pipeline_invalid = template_commands.run(
        "pipeline-template-validate", [], environ, "name: x\n", "f"
    )
    api.refuse = True
    refused = template_commands.run("template-publish", [], environ, SD_TEMPLATE, "f")
    pipeline_refused = template_commands.run(
        "pipeline-template-publish", [], environ, SD_TEMPLATE, "f"
    )

    assert missing == (
        1,
        "",
        "template-publish: cannot read ./sd-template.yaml: set SD_TEMPLATE_PATH or add the file.\n",
    )
    assert usage[0] == 2 and usage[2].startswith("usage: template-tag --name NAME --tag TAG")
    assert invalid == (
        1,
        "",
        'Template is not valid for the following reasons:\n  "maintainer" is required\n',
    )
    assert refused == (
        1,
        "",
        "template-publish: 403 (Forbidden): Not allowed to publish this template\n",
    )
    assert pipeline_invalid == (
        1,
        "",
        'Template is not valid for the following reasons:\n  "maintainer" is required\n',
    )
    assert pipeline_refused[2] == (
        "pipeline-template-publish: 403 (Forbidden): Not allowed to publish this template\n"
    )
    assert template_commands.run("template-remove", ["--name", "x"], {}, None, "f")[2] == (
        "template-remove: SD_API_URL and SD_TOKEN must be set: run this in a build.\n"
    )


def test_in_a_container_the_shell_client_sends_the_file_and_the_launcher_calls_its_api(
    tmp_path: Path, api: FakeApi
) -> None:
    workspace = Workspace(tmp_path / "ws")
    control = prepare_control_dir(tmp_path / ".sd-agent")
    workspace.prepare({}, control)
    source = tmp_path / "src"
    source.mkdir()
    (source / "custom.yaml").write_text(SD_TEMPLATE)
    # What a step's environment says about the API is not what the launcher uses.
    steps_environ = {"SD_API_URL": "http://127.0.0.1:9", "SD_TOKEN": "stolen"}
    server = MetaServer(
        control, workspace.meta_path, steps_environ, api_url=f"{api.url}/v4", token="build-token"
    )
    server.start()
    try:
        done = subprocess.run(
            ["sh", str(workspace.bin / "template-publish")],
            cwd=source,
            env={"PATH": "/usr/bin:/bin", "SD_TEMPLATE_PATH": "custom.yaml"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        missing = subprocess.run(
            ["sh", str(workspace.bin / "template-validate")],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        server.close()

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "Template ns/tpl@1.0.4 was successfully published and tagged as latest\n"
    # The shell read the file with builtins only; its last newline is all it may drop.
    assert api.requests[0] == (
        "POST",
        "/v4/templates",
        "Bearer build-token",
        {"yaml": SD_TEMPLATE[:-1]},
    )
    assert missing.returncode == 1
    assert "cannot read ./sd-template.yaml" in missing.stderr

"""With default settings: no settings or tracebacks in any error; a private data folder."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from acceptance.stack import Stack, finished, first_build, log_lines, start, wait_for

pytestmark = pytest.mark.xdist_group("safety")

LEAKS = ("Traceback", "DATABASE_URL", "SECRET_KEY", "sqlite:///", "settings.py", "DEBUG = True")


def _shows_nothing(response: httpx.Response) -> None:
    body = response.text
    assert not [leak for leak in LEAKS if leak in body], body[:2000]


@pytest.mark.parametrize("path", ["/", "/pipelines", "/v4/status", "/v4/pipelines"])
def test_a_bad_host_header_is_refused_without_showing_anything(stack: Stack, path: str) -> None:
    response = httpx.get(stack.url + path, headers={"Host": "evil.example"})
    assert response.status_code == 400
    _shows_nothing(response)


@pytest.mark.parametrize("path", ["/no/such/page", "/v4/no/such/route", "/static/no-such-file.css"])
def test_an_unknown_address_is_a_plain_404(stack: Stack, path: str) -> None:
    response = httpx.get(stack.url + path, follow_redirects=True)
    assert response.status_code == 404
    _shows_nothing(response)


def test_an_oversized_body_is_refused_without_showing_anything(stack: Stack) -> None:
    big = "x" * (3 * 1024 * 1024)
    api = httpx.post(
        f"{stack.url}/v4/validator",
        json={"yaml": big},
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=60,
    )
    assert api.status_code == 413
    _shows_nothing(api)
    page = httpx.post(f"{stack.url}/login/", data={"username": big, "password": "x"}, timeout=60)
    assert page.status_code in (403, 413)  # no CSRF cookie: refused before or at the size
    _shows_nothing(page)


def test_the_data_folder_is_0700_and_its_files_0600(stack: Stack) -> None:
    listing = subprocess.run(
        ["ls", "-la", str(stack.data_dir)], capture_output=True, text=True, check=True
    ).stdout
    assert stat.S_IMODE(stack.data_dir.stat().st_mode) == 0o700, listing
    entries = list(stack.data_dir.iterdir())
    assert {"db.sqlite3", "secret_key", "admin-password"} <= {e.name for e in entries}, listing
    for entry in entries:
        mode = stat.S_IMODE(entry.stat().st_mode)
        assert mode == (0o700 if entry.is_dir() else 0o600), listing
    workspaces = stack.data_dir / "workspaces"
    assert stat.S_IMODE(workspaces.stat().st_mode) == 0o700, listing


def test_an_api_token_in_the_query_string_is_logged_redacted(stack: Stack) -> None:
    token = stack.token
    response = httpx.get(f"{stack.url}/v4/auth/token", params={"api_token": token})
    assert response.status_code == 200
    wait_for(
        lambda: "/v4/auth/token?api_token=[redacted]" in stack.log.read_text(errors="replace"),
        timeout=10,
        what="the request in the access log",
    )
    # os.walk, not rglob: a workspace being removed meanwhile is skipped, not an error.
    logs = [stack.log] + [
        Path(top, name)
        for top, _dirs, files in os.walk(stack.data_dir)
        for name in files
        if name.endswith(".log")
    ]
    assert not [log for log in logs if token in log.read_text(errors="replace")]


PRYING = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - pry: |
          for f in "$SD_ROOT_DIR/../../secret_key" "$SD_ROOT_DIR/../../db.sqlite3" \\
                   "$SD_ROOT_DIR/../../admin-password"; do
            if cat "$f" >/dev/null 2>&1; then echo "LEAK $f"; else echo "SAFE $f"; fi
          done
          if grep -qs SD_SECRET_KEY /proc/[0-9]*/environ; then echo "LEAK environ"; fi
          echo "pried"
"""


@pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="local builds are sandboxed with bubblewrap: install it"
)
def test_a_build_of_make_run_cannot_read_the_server_data_folder(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, _ = repo(PRYING, name="prying")
    row = first_build(stack, start(stack, bare))
    ended = finished(stack, row["id"], timeout=120)
    lines = log_lines(stack, row["id"], "pry")
    assert ended["status"] == "SUCCESS", (ended, lines)
    assert lines[-1] == "pried"
    assert [line for line in lines if line.startswith("LEAK")] == []
    assert len([line for line in lines if line.startswith("SAFE")]) == 3
    assert (stack.data_dir / "secret_key").exists()

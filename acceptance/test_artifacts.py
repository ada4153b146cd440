"""A build's artifacts end up in the server's outputs folder, and its links do not; they are
read back over HTTP as a user reads them."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from acceptance.stack import Stack, finished, first_build, log_lines, start

pytestmark = pytest.mark.xdist_group("builds")

REPORT = b'<link rel="stylesheet" href="style.css"><h1>ok</h1>'
PUBLISHER = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - write: |
          cd "$SD_ARTIFACTS_DIR"
          mkdir -p reports
          printf '<link rel="stylesheet" href="style.css"><h1>ok</h1>' > reports/index.html
          printf 'h1 { color: green; }' > reports/style.css
          seq 1 200000 > numbers.txt
          ln -s /etc/passwd passwd
"""


def test_a_build_publishes_its_artifacts_into_the_outputs_folder(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, _ = repo(PUBLISHER, name="publisher")
    event = start(stack, bare)
    row = first_build(stack, event)
    ended = finished(stack, row["id"], timeout=120)
    publishing = log_lines(stack, row["id"], "sd-teardown-artifacts")
    assert ended["status"] == "SUCCESS", publishing
    steps = {step["name"]: step for step in ended["steps"]}
    assert steps["sd-teardown-artifacts"]["code"] == 0
    assert "passwd: skipped: a symbolic link is never followed." in publishing

    # `make run` keeps outputs in SD_DATA_DIR/outputs unless SD_STORAGE_URL says otherwise.
    folder = stack.data_dir / "outputs" / "artifacts" / str(row["id"])
    assert (folder / "reports" / "index.html").read_bytes() == REPORT
    numbers = "".join(f"{i}\n" for i in range(1, 200001)).encode()
    assert (folder / "numbers.txt").read_bytes() == numbers
    assert not (folder / "passwd").exists()
    assert json.loads((folder / "steps.json").read_text())[1]["name"] == "write"
    assert (folder / "manifest.txt").read_text().splitlines() == [
        "./environment.json",
        "./manifest.txt",
        "./numbers.txt",
        "./reports/index.html",
        "./reports/style.css",
        "./steps.json",
    ]

    # Read back as a user does: one file whole and in part, a folder, and everything zipped.
    api = stack.api()
    whole = api.get(f"/builds/{row['id']}/artifacts/numbers.txt", params={"type": "download"})
    assert whole.status_code == 200 and whole.content == numbers
    assert "attachment" in whole.headers["Content-Disposition"]
    part = api.get(f"/builds/{row['id']}/artifacts/numbers.txt", headers={"Range": "bytes=0-5"})
    assert (part.status_code, part.content) == (206, b"1\n2\n3\n")
    listing = api.get(f"/builds/{row['id']}/artifacts/reports", params={"dir": "true"})
    assert listing.status_code == 200 and "index.html" in listing.text
    everything = api.get(f"/builds/{row['id']}/artifacts")
    assert everything.status_code == 200
    names = set(zipfile.ZipFile(io.BytesIO(everything.content)).namelist())
    assert {"numbers.txt", "reports/index.html", "steps.json"} <= names
    assert "passwd" not in names
    refused = stack.api(token="not-a-token").get(f"/builds/{row['id']}/artifacts/numbers.txt")
    assert refused.status_code == 401

    # On the build page the report is framed at a capability address: it and the style beside
    # it load without a cookie, the style as a style, and a made-up token opens nothing.
    signed_in = httpx.Client(base_url=stack.url, timeout=30)
    signed_in.get("/login/")
    password = (stack.data_dir / "admin-password").read_text().strip()
    login = signed_in.post(
        "/login/",
        data={
            "username": "admin",
            "password": password,
            "csrfmiddlewaretoken": signed_in.cookies["csrftoken"],
        },
    )
    assert login.status_code == 302, login.text
    tab = signed_in.get(
        f"/pipelines/{event['pipelineId']}/builds/{row['id']}/artifacts/reports/index.html"
    )
    frame = re.search(r'<iframe[^>]* src="([^"]+)"', tab.text)
    assert frame is not None, tab.text
    cookieless = httpx.Client(base_url=stack.url, timeout=30)
    report = cookieless.get(frame[1])
    style = cookieless.get(frame[1].replace("index.html", "style.css"))
    assert (report.status_code, report.content) == (200, REPORT)
    assert "sandbox allow-scripts" in report.headers["Content-Security-Policy"]
    assert (style.status_code, style.headers["Content-Type"]) == (200, "text/css; charset=utf-8")
    assert style.headers["Referrer-Policy"] == "no-referrer"
    forged = cookieless.get(f"/v4/builds/{row['id']}/artifacts-view/1.2.3.4.x/reports/style.css")
    assert forged.status_code == 403

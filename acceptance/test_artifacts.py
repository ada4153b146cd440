"""A build's artifacts end up in the server's outputs folder, and its links do not; they are
read back over HTTP as a user reads them."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from acceptance.stack import Stack, finished, first_build, log_lines, start

pytestmark = pytest.mark.xdist_group("builds")

PUBLISHER = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - write: |
          cd "$SD_ARTIFACTS_DIR"
          mkdir -p reports
          printf '<h1>ok</h1>' > reports/index.html
          seq 1 200000 > numbers.txt
          ln -s /etc/passwd passwd
"""


def test_a_build_publishes_its_artifacts_into_the_outputs_folder(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, _ = repo(PUBLISHER, name="publisher")
    row = first_build(stack, start(stack, bare))
    ended = finished(stack, row["id"], timeout=120)
    publishing = log_lines(stack, row["id"], "sd-teardown-artifacts")
    assert ended["status"] == "SUCCESS", publishing
    steps = {step["name"]: step for step in ended["steps"]}
    assert steps["sd-teardown-artifacts"]["code"] == 0
    assert "passwd: skipped: a symbolic link is never followed." in publishing

    # `make run` keeps outputs in SD_DATA_DIR/outputs unless SD_STORAGE_URL says otherwise.
    folder = stack.data_dir / "outputs" / "artifacts" / str(row["id"])
    assert (folder / "reports" / "index.html").read_bytes() == b"<h1>ok</h1>"
    numbers = "".join(f"{i}\n" for i in range(1, 200001)).encode()
    assert (folder / "numbers.txt").read_bytes() == numbers
    assert not (folder / "passwd").exists()
    assert json.loads((folder / "steps.json").read_text())[1]["name"] == "write"
    assert (folder / "manifest.txt").read_text().splitlines() == [
        "./environment.json",
        "./manifest.txt",
        "./numbers.txt",
        "./reports/index.html",
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

"""A pipeline for one folder of a repository (`checkoutUrl#branch:folder`), fed by `git push`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acceptance.stack import Stack, finished, git, log_lines, wait_for

pytestmark = pytest.mark.xdist_group("builds")

# The file of a folder pipeline lives in its folder; its steps start there.
APP_YAML = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - where: pwd; echo "source=$SD_SOURCE_DIR"; ls
"""


def _commit_and_push(work: Path, path: str, text: str) -> str:
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", f"change {path}", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def _events(stack: Stack, pipeline_id: int) -> list[dict[str, Any]]:
    return list(stack.api().get(f"/pipelines/{pipeline_id}/events").json())


def test_a_folder_pipeline_builds_in_its_folder_and_ignores_pushes_elsewhere(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, work = repo("jobs: {}\n", name="mono")
    _commit_and_push(work, "app/screwdriver.yaml", APP_YAML)
    _commit_and_push(work, "other/README", "another team's folder\n")

    created = stack.api().post("/pipelines", json={"checkoutUrl": f"{bare}#main:app"})
    assert created.status_code == 201, created.text
    pipeline = created.json()
    assert pipeline["scmRepo"]["rootDir"] == "app"
    before = {event["id"] for event in _events(stack, pipeline["id"])}

    elsewhere = _commit_and_push(work, "other/notes.txt", "not the app\n")
    inside = _commit_and_push(work, "app/main.c", "int main(void) { return 0; }\n")

    event = wait_for(
        lambda: next((e for e in _events(stack, pipeline["id"]) if e["sha"] == inside), None),
        timeout=60,
        what="the push into app/ to start an event",
    )
    (row,) = wait_for(
        lambda: stack.api().get(f"/events/{event['id']}/builds").json(),
        timeout=30,
        what="the event's build",
    )
    build = finished(stack, row["id"], timeout=120)
    assert build["status"] == "SUCCESS", build["statusMessage"]
    pwd, source, *listing = log_lines(stack, row["id"], "where")
    assert pwd.endswith("/app") and source == f"source={pwd}"
    assert "main.c" in listing and "notes.txt" not in listing

    # The push that touched other/ only was delivered first; a moment more changes nothing.
    time.sleep(3)
    shas = {e["sha"] for e in _events(stack, pipeline["id"]) if e["id"] not in before}
    assert elsewhere not in shas
    assert shas == {inside}

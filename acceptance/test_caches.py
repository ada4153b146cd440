"""Build caches through `make run`: kept from one build to the next, cleared through the API."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from acceptance.stack import Stack, finished, first_build, log_lines, start

# Without bubblewrap HOME is the server's, outside the workspace: ~ is not cached there.
pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="local builds are sandboxed with bubblewrap: install it"
)

CACHED = """
cache:
  pipeline: [~/.warm, vendor]
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - show: cat ~/.warm/value vendor/lib.txt 2>/dev/null || echo "no cache"
      - fill: |
          mkdir -p ~/.warm vendor
          echo "from build $SD_BUILD_ID" > ~/.warm/value
          head -c 3000000 /dev/urandom > vendor/blob
          echo "vendored by $SD_BUILD_ID" > vendor/lib.txt
"""


def run(stack: Stack, bare: Path) -> tuple[int, int]:
    """Start an event; return the pipeline's id and the finished build's."""
    event = start(stack, bare)
    row = first_build(stack, event)
    ended = finished(stack, row["id"], timeout=120)
    assert ended["status"] == "SUCCESS", (ended, log_lines(stack, row["id"], "sd-setup-cache"))
    return int(event["pipelineId"]), int(row["id"])


def test_a_cache_is_restored_in_the_next_build_until_an_admin_clears_it(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, _ = repo(CACHED, name="cached")
    pipeline_id, first = run(stack, bare)
    assert log_lines(stack, first, "show") == ["no cache"]
    saved = log_lines(stack, first, "sd-teardown-cache")
    assert saved[0].startswith("Saved the pipeline cache ~/.warm from ")
    assert saved[1].startswith("Saved the pipeline cache vendor from ")

    _, second = run(stack, bare)
    assert log_lines(stack, second, "show") == [f"from build {first}", f"vendored by {first}"]

    cleared = stack.api().delete(
        f"/pipelines/{pipeline_id}/caches", params={"scope": "pipelines", "cacheId": pipeline_id}
    )
    assert cleared.status_code == 204, cleared.text
    _, third = run(stack, bare)
    assert log_lines(stack, third, "show") == ["no cache"]

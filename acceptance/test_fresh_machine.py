"""On a clean root filesystem with only Python 3.11 and git: `make run` runs the demo to
SUCCESS and `make test` passes (tools/fresh_machine.sh; needs root and debootstrap)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from acceptance.stack import REPO

pytestmark = pytest.mark.xdist_group("fresh")


def test_make_run_and_make_test_work_on_a_clean_machine() -> None:
    script = subprocess.Popen(
        [str(REPO / "tools" / "fresh_machine.sh")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = script.communicate(timeout=35 * 60)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the script unmounts and removes its root filesystem on the way out.
        os.killpg(script.pid, signal.SIGTERM)
        out, _ = script.communicate(timeout=60)
        pytest.fail("the fresh-machine check took more than 35 minutes:\n" + out[-8000:])
    if script.returncode == 77:
        pytest.skip(out.strip().splitlines()[-1])
    print("\n".join(line for line in out.splitlines() if line.startswith("[fresh-machine]")))
    assert script.returncode == 0, _what_went_wrong(out)


def _what_went_wrong(out: str) -> str:
    """The failures pytest printed inside the root and the end of the output, without the
    list of skipped tests (a clean root skips a thousand, and they would fill the report)."""
    lines = [line for line in out.splitlines() if "SKIPPED [" not in line]
    text = "\n".join(lines)
    start = text.find("= FAILURES =")
    end = text.find("short test summary info", start)
    failures = text[start:end][:12000] + "\n[...]\n" if start >= 0 else ""
    return failures + text[-4000:]

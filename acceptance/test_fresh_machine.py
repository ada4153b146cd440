"""On a clean root filesystem with only Python 3.11 and git: `make run` runs the demo to
SUCCESS and `make test` passes (tools/fresh_machine.sh; needs root and debootstrap)."""

from __future__ import annotations

import subprocess

import pytest

from acceptance.stack import REPO

pytestmark = pytest.mark.xdist_group("fresh")


def test_make_run_and_make_test_work_on_a_clean_machine() -> None:
    done = subprocess.run(
        [str(REPO / "tools" / "fresh_machine.sh")],
        capture_output=True,
        text=True,
        timeout=40 * 60,
    )
    if done.returncode == 77:
        pytest.skip(done.stdout.strip().splitlines()[-1])
    progress = [line for line in done.stdout.splitlines() if line.startswith("[fresh-machine]")]
    print("\n".join(progress))
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]

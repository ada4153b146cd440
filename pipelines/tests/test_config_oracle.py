"""Differential tests: our parser against Screwdriver's own (npm screwdriver-config-parser)."""

from __future__ import annotations

import fcntl
import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import parse_pipeline_yaml

ROOT = Path(__file__).resolve().parents[2]
ORACLE = ROOT / "oracle"
FIXTURES = sorted((Path(__file__).parent / "fixtures" / "configs").glob("*.yaml"))

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="session")
def oracle() -> Path:
    """Install the pinned reference packages once; skip when Node or npm is unavailable."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the oracle tests")
    installed = ORACLE / "node_modules" / ".sd-installed"
    # Parallel test workers share the directory: one installs, the others wait on the lock.
    with open(ORACLE / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.exists():
            try:
                subprocess.run(
                    ["npm", "ci", "--no-audit", "--no-fund"],
                    cwd=ORACLE,
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
            except (subprocess.SubprocessError, OSError) as exc:
                pytest.skip(f"could not install the oracle packages: {exc}")
            installed.touch()
    return ORACLE


def reference_result(oracle: Path, text: str) -> dict[str, Any]:
    """Return what the reference parser makes of text."""
    completed = subprocess.run(
        ["node", str(oracle / "parse.js")],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(completed.stdout)  # type: ignore[no-any-return]


def normalised(result: dict[str, Any]) -> dict[str, Any]:
    """Remove the two differences we make on purpose or cannot avoid.

    1. YAML syntax errors: js-yaml and PyYAML word them differently and js-yaml appends a
       source snippet, so a YAMLException is compared by its kind only.
    2. The fallback job's echo command: we quote with shlex.quote, the reference with
       shell-escape; both are rebuilt here from the (normalised) error text.
    """
    result = json.loads(json.dumps(result))
    if "errors" in result:
        result["errors"] = [
            "YAMLException" if error.startswith("YAMLException:") else error
            for error in result["errors"]
        ]
        command = f"echo {shlex.quote(result['errors'][0])}; exit 1"
        result["jobs"]["main"][0]["commands"][0]["command"] = command
    return result


@pytest.mark.parametrize("fixture", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_our_result_equals_the_reference_result(oracle: Path, fixture: Path) -> None:
    text = fixture.read_text()

    assert normalised(parse_pipeline_yaml(text)) == normalised(reference_result(oracle, text))


def test_there_are_enough_fixtures_including_broken_ones() -> None:
    broken = [path for path in FIXTURES if "errors" in parse_pipeline_yaml(path.read_text())]

    assert len(FIXTURES) >= 15
    assert len(broken) >= 5

"""schemathesis over the running API: one command line for the unit and acceptance suites.

Only `not_a_server_error` is checked: whatever a caller sends, the answer is never a 5xx.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def schemathesis_cli() -> str | None:
    """The `st` command of this virtual environment (or of PATH)."""
    return shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")


def fuzz_api(
    base_url: str,
    *,
    token: str,
    examples: int,
    seed: int,
    workdir: Path,
    phases: str = "examples,fuzzing",
    timeout: float = 1500,
) -> subprocess.CompletedProcess[str]:
    """Run every operation of `base_url`/v4/swagger.json as the holder of `token`."""
    cli = schemathesis_cli()
    if cli is None:
        raise FileNotFoundError("schemathesis is not installed: run `make venv`.")
    return subprocess.run(
        [
            cli,
            "run",
            f"{base_url}/v4/swagger.json",
            "--url",
            base_url,
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(examples),
            "--phases",
            phases,
            "--seed",
            str(seed),
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--header",
            f"Authorization: Bearer {token}",
            "--suppress-health-check",
            "all",
            "--output-truncate",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=workdir,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )

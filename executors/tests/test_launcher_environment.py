"""Building the build environment and handing it to a real shell."""

from __future__ import annotations

import subprocess
from pathlib import Path

from executors.launcher.environment import build_environment, expand, export_script


def test_expand_replaces_both_forms_from_earlier_values_only() -> None:
    env = {"A": "1", "B_2": "two"}
    assert expand("$A-${B_2}-$A$A", env) == "1-two-11"
    assert expand("x${MISSING}y$MISSING", env) == "xy"


def test_expand_never_evaluates_shell_syntax() -> None:
    env = {"A": "1"}
    assert expand("$(whoami) `id` * $ $1 ${A", env) == "$(whoami) `id` * $ $1 ${A"
    assert expand("'$A'", env) == "'1'"


def test_build_environment_orders_and_expands_job_values(tmp_path: Path) -> None:
    env = build_environment(
        base={"PATH": "/usr/bin", "HOME": "/home/u", "SD_LAUNCHER_TOKEN": "x", "PYTHONPATH": "p"},
        launcher_vars={"SD_SOURCE_DIR": "/ws/src/repo", "SD_TOKEN": "tok"},
        bin_dir=tmp_path / "bin",
        job_environment=[
            ("SD_BUILD_ID", "7"),
            ("FOO", "$SD_BUILD_ID-x"),
            ("BAR", "${FOO}/$SD_SOURCE_DIR"),
            ("SD_SOURCE_DIR", "/elsewhere"),
            ("SECRET", "overridden"),
            ("LATER", "$SECRET"),
        ],
        secrets={"SECRET": "$not-expanded"},
    )
    assert "SD_LAUNCHER_TOKEN" not in env
    assert "PYTHONPATH" not in env
    assert env["PATH"] == f"{tmp_path / 'bin'}:/usr/bin"
    assert env["FOO"] == "7-x"
    assert env["BAR"] == "7-x//ws/src/repo"
    assert env["SD_SOURCE_DIR"] == "/ws/src/repo"
    assert env["LATER"] == "overridden"
    assert env["SECRET"] == "$not-expanded"
    assert list(env)[-1] == "SECRET"


def test_export_script_round_trips_awkward_values_through_a_shell(tmp_path: Path) -> None:
    values = {
        "QUOTES": 'it\'s "quoted"',
        "NEWLINE": "a\nb",
        "DOLLAR": "$HOME `id` $(id)",
        "EMPTY": "",
        "UNICODE": "é€",
    }
    script = tmp_path / "env"
    script.write_text(export_script({**values, "BAD-NAME": "skipped"}))
    for name, value in values.items():
        printed = subprocess.run(
            ["/bin/sh", "-c", f'. "$0"; printf %s "${name}"', str(script)],
            capture_output=True,
            check=True,
            env={},
        ).stdout
        assert printed.decode() == value

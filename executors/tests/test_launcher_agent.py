"""The parts of the container agent that need no container: reading `export -p`, the registry."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from executors.base import ExecutorError
from executors.launcher.agent import parse_exports, prepare_control_dir
from executors.registry import executor_name_for, get_executor

TRICKY = {"A": "it's $x", "B": "multi\nline", "C": 'say "hi" \\ `now`', "D": "", "E": "tab\there"}


@pytest.mark.parametrize("shell", [["dash"], ["busybox", "ash"], ["bash", "--posix"]])
def test_parse_exports_reads_back_what_each_shell_printed(shell: list[str]) -> None:
    try:
        out = subprocess.run(
            [*shell, "-c", "export -p"], env=TRICKY, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"{shell[0]} is not installed (apt-get install {shell[0]})")
    parsed = parse_exports(out)
    assert {k: parsed[k] for k in TRICKY} == TRICKY


def test_prepare_control_dir_makes_private_fifos_and_is_idempotent(tmp_path: Any) -> None:
    directory = prepare_control_dir(tmp_path / ".sd-agent")
    prepare_control_dir(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["ctl", "events", "out"]
    assert oct(directory.stat().st_mode & 0o777) == "0o700"


def test_the_annotation_picks_the_engine_and_the_setting_is_the_default(settings: Any) -> None:
    settings.SD_EXECUTOR = "local"
    assert executor_name_for({}) == "local"
    assert executor_name_for({"screwdriver.cd/executor": "docker"}) == "docker"
    assert executor_name_for({"beta.screwdriver.cd/executor": "k8s"}) == "k8s"
    settings.SD_EXECUTOR = "docker"
    assert executor_name_for({}) == "docker"
    assert {get_executor(n).name for n in ("local", "docker", "k8s")} == {"local", "docker", "k8s"}


def test_an_unknown_engine_is_a_permanent_error_that_lists_the_known_ones() -> None:
    with pytest.raises(ExecutorError) as caught:
        get_executor("vm")
    assert caught.value.permanent
    assert caught.value.message == "Unknown executor 'vm'; this server offers: docker, k8s, local."

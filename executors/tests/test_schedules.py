"""The periodic tasks exist on every migrated database and follow the settings."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.utils.module_loading import import_string
from django_q.models import Schedule

from conftest import BASE_DIR
from screwdriver_site.schedules import ensure_periodic_tasks

EVERY_INSTALLATION = {
    "sd-reaper": ("executors.tasks.reap", "I"),
    "sd-outbox": ("builds.tasks.sweep_outbox", "I"),
    "sd-scm-poll": ("executors.tasks.poll_repositories", "I"),
    "sd-webhook-redeliver": ("scm.tasks.redeliver_stuck", "I"),
    "sd-prune-deliveries": ("scm.tasks.prune_deliveries", "D"),
    "sd-prune-outputs": ("builds.tasks.prune_outputs", "D"),
}


@pytest.mark.slow
def test_migrating_an_empty_database_schedules_every_periodic_task(tmp_path: Path) -> None:
    database = tmp_path / "fresh.sqlite3"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SD_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{database}",
        "SD_SECRET_KEY": "test-only-key",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr

    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT name, func, schedule_type, repeats FROM django_q_schedule"
        ).fetchall()
    found = {name: (func, kind) for name, func, kind, repeats in rows if repeats == -1}
    assert found == EVERY_INSTALLATION


@pytest.mark.django_db
def test_a_worker_start_brings_the_schedules_to_the_current_settings(settings: Any) -> None:
    settings.SD_REAPER_INTERVAL_MINUTES = 3
    settings.SD_SCM_POLL_MINUTES = 0  # never more often than once a minute
    Schedule.objects.filter(name="sd-reaper").update(minutes=1)

    ensure_periodic_tasks()
    ensure_periodic_tasks()

    minutes = dict(Schedule.objects.filter(name__startswith="sd-").values_list("name", "minutes"))
    assert minutes["sd-reaper"] == 3 and minutes["sd-scm-poll"] == 1
    assert Schedule.objects.filter(name="sd-reaper").count() == 1


def test_every_scheduled_task_names_a_function_that_exists() -> None:
    for func, _kind in EVERY_INSTALLATION.values():
        assert callable(import_string(func))


@pytest.mark.django_db
def test_duplicate_schedules_left_by_two_servers_starting_together_are_merged() -> None:
    ensure_periodic_tasks()
    Schedule.objects.create(name="sd-reaper", func="executors.tasks.reap", repeats=-1)

    ensure_periodic_tasks()

    assert Schedule.objects.filter(name="sd-reaper").count() == 1

"""Old build outputs go: by the daily task and by `sd_prune_outputs`, files and rows alike."""

from __future__ import annotations

import hashlib
import io
import os
import pty
import select
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from builds import caches
from builds.artifacts import store_artifact
from builds.models import Artifact, Build, BuildStatus, Cache
from builds.retention import prune_outputs, retention_cutoff
from pipelines.models import Pipeline
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.outputs import outputs
from screwdriver_site.schedules import ensure_periodic_tasks

pytestmark = pytest.mark.django_db

YAML = """\
cache:
  pipeline: [~/.warm]
  job:
    main: [old-deps, new-deps, used-deps]
jobs:
  main:
    image: node:22
    requires: [~commit]
    steps:
      - a: echo a
"""


def new_build(pipeline: Pipeline, n: int) -> Build:
    build = Build.objects.get(event=event_from_yaml(pipeline, YAML + "\n" * n))
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.RUNNING)
    build.refresh_from_db()
    return build


@pytest.fixture
def pipeline(owner: Any) -> Pipeline:
    return pipeline_from_yaml(YAML, owner=owner)


def artifact(build: Build, path: str, *, age_days: float) -> None:
    store_artifact(build, path, io.BytesIO(b"report " + path.encode()))
    stored = timezone.now() - timedelta(days=age_days)
    Artifact.objects.filter(build=build, path=path).update(created_at=stored)


def cache(
    build: Build, name: str, *, age_days: float, read_days: float | None = None, scope: str = "jobs"
) -> Cache:
    data = b"archive of " + name.encode()
    row = caches.store_cache(
        build=build,
        scope=scope,
        name=name,
        source=io.BytesIO(data),
        length=len(data),
        digest=hashlib.sha256(data).hexdigest(),
    )
    now = timezone.now()
    read = None if read_days is None else now - timedelta(days=read_days)
    Cache.objects.filter(pk=row.pk).update(updated_at=now - timedelta(days=age_days), read_at=read)
    return row


def cache_names() -> list[str]:
    return sorted(Cache.objects.values_list("name", flat=True))


def test_old_artifacts_and_caches_go_and_recent_or_used_ones_stay(
    pipeline: Pipeline, settings: Any
) -> None:
    settings.SD_OUTPUTS_RETENTION_DAYS = 30
    old, recent = new_build(pipeline, 1), new_build(pipeline, 2)
    artifact(old, "report.html", age_days=31)
    artifact(old, "deep/log.txt", age_days=40)
    artifact(recent, "report.html", age_days=2)
    gone = cache(old, "old-deps", age_days=45)
    cache(old, "new-deps", age_days=1)
    cache(old, "used-deps", age_days=90, read_days=3)

    out = StringIO()
    call_command("sd_prune_outputs", stdout=out, stderr=StringIO())

    assert list(Artifact.objects.values_list("build_id", "path")) == [(recent.pk, "report.html")]
    assert not outputs().exists(f"artifacts/{old.pk}/report.html")
    assert outputs().exists(f"artifacts/{recent.pk}/report.html")
    assert cache_names() == ["new-deps", "used-deps"]
    assert not outputs().exists(gone.storage_name)
    said = out.getvalue()
    assert "Deleted the artifacts of 1 build (2 files, " in said
    assert "Deleted 1 cache (" in said
    assert "(the last 30 days)" in said


def test_a_dry_run_says_what_would_go_and_deletes_nothing(pipeline: Pipeline) -> None:
    old = new_build(pipeline, 1)
    artifact(old, "report.html", age_days=31)
    kept = cache(old, "old-deps", age_days=45)
    out = StringIO()
    call_command("sd_prune_outputs", "--dry-run", "--days", "7", stdout=out, stderr=StringIO())
    assert "Would delete the artifacts of 1 build (1 file, " in out.getvalue()
    assert "Would delete 1 cache (" in out.getvalue()
    assert Artifact.objects.count() == 1 and cache_names() == ["old-deps"]
    assert outputs().exists(kept.storage_name)


def test_zero_days_keeps_everything_and_a_negative_period_is_refused(pipeline: Pipeline) -> None:
    old = new_build(pipeline, 1)
    artifact(old, "report.html", age_days=3000)
    out = StringIO()
    call_command("sd_prune_outputs", "--days", "0", stdout=out)
    assert out.getvalue() == "Outputs are kept for ever (0 days): nothing to delete.\n"
    assert Artifact.objects.count() == 1
    with pytest.raises(CommandError, match="--days must be 0 or more"):
        call_command("sd_prune_outputs", "--days", "-1", stdout=StringIO())


def test_the_command_shows_its_progress(pipeline: Pipeline) -> None:
    for n in range(3):
        artifact(new_build(pipeline, n), "a.txt", age_days=60)
    err = StringIO()
    call_command("sd_prune_outputs", "--dry-run", "--verbosity", "2", stdout=StringIO(), stderr=err)
    assert err.getvalue().splitlines() == [f"[{'#' * 30}] 3/3"]
    seen: list[tuple[int, int]] = []
    before = retention_cutoff(days=30)
    assert before is not None
    prune_outputs(before=before, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 3), (3, 3)]
    assert not Artifact.objects.exists()


def everything_written(controller: int) -> bytes:
    """What was written to a terminal whose other end is now closed."""
    chunks = []
    while select.select([controller], [], [], 5)[0]:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the other end is closed and everything has been read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_on_a_terminal_the_command_redraws_one_bar_in_place(pipeline: Pipeline) -> None:
    for n in range(3):
        artifact(new_build(pipeline, n), "a.txt", age_days=60)
    build = new_build(pipeline, 3)
    cache(build, "old-deps", age_days=60)
    cache(build, "new-deps", age_days=60)
    controller, terminal = pty.openpty()
    try:
        with os.fdopen(terminal, "w") as stderr:
            call_command("sd_prune_outputs", stdout=StringIO(), stderr=stderr)
        drawn = everything_written(controller)
    finally:
        os.close(controller)
    # The artifacts' batch, then the caches': the same line drawn over, ended once.
    first = "#" * 18 + "." * 12
    assert drawn == f"\r[{first}] 3/5\r[{'#' * 30}] 5/5\r\n".encode()
    assert not Artifact.objects.exists() and not Cache.objects.exists()


def test_files_of_pipelines_events_and_builds_that_are_gone_go_too(
    pipeline: Pipeline, owner: Any
) -> None:
    doomed = pipeline_from_yaml(YAML, owner=owner, name="local/doomed")
    build = new_build(doomed, 1)
    artifact(build, "a.txt", age_days=0)
    row = cache(build, "~/.warm", age_days=0, scope="pipelines")
    survivor = cache(new_build(pipeline, 1), "~/.warm", age_days=0, scope="pipelines")
    doomed_id, build_id = doomed.pk, build.pk
    doomed.delete()  # rows cascade; the stored files stay behind until the sweep

    report = prune_outputs(before=timezone.now() - timedelta(days=30))

    assert report.orphan_folders == 2
    assert not outputs().exists(row.storage_name)
    assert not outputs().exists(f"artifacts/{build_id}/a.txt")
    assert outputs().exists(survivor.storage_name)
    assert not Cache.objects.filter(scope_id=doomed_id).exists()


def test_the_daily_schedule_runs_the_task_that_honours_the_setting(
    pipeline: Pipeline, settings: Any
) -> None:
    settings.SD_OUTPUTS_RETENTION_DAYS = 3
    Schedule.objects.filter(name="sd-prune-outputs").delete()
    ensure_periodic_tasks()
    schedule = Schedule.objects.get(name="sd-prune-outputs")
    assert schedule.schedule_type == Schedule.DAILY and schedule.repeats == -1
    build = new_build(pipeline, 1)
    artifact(build, "four-days.txt", age_days=4)
    cache(build, "old-deps", age_days=4)
    cache(build, "new-deps", age_days=2)
    done = import_string(schedule.func)()
    assert (done["artifact_builds"], done["caches"]) == (1, 1)
    assert cache_names() == ["new-deps"]
    settings.SD_OUTPUTS_RETENTION_DAYS = 0
    cache(build, "old-deps", age_days=400)
    assert import_string(schedule.func)()["caches"] == 0

"""The lifecycle table: every (from, to) pair, and no writer of Build.status but lifecycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings

from builds import lifecycle, outbox
from builds.lifecycle import TRANSITIONS, TransitionError
from builds.models import Build, BuildStatus, OutboxMessage
from pipelines.models import Event, Job, Pipeline

PAIRS = [(before, after) for before in BuildStatus for after in BuildStatus]


@pytest.fixture
def build(db: None) -> Build:
    pipeline = Pipeline.objects.create(scm_uri="local:/lifecycle", checkout_url="/lifecycle.git")
    job = Job.objects.create(pipeline=pipeline, name="main")
    event = Event.objects.create(pipeline=pipeline, sha="a" * 40)
    return Build.objects.create(job=job, event=event, number=1, sha="a" * 40)


@pytest.mark.parametrize(("before", "after"), PAIRS, ids=[f"{b}->{a}" for b, a in PAIRS])
def test_a_build_changes_status_exactly_where_the_table_says(
    build: Build, before: BuildStatus, after: BuildStatus
) -> None:
    Build.objects.filter(pk=build.pk).update(status=before)
    followers = sorted(
        h.name
        for h in outbox.handlers().values()
        if after in h.statuses and (h.concerns is None or h.concerns(build))
    )

    if after in TRANSITIONS[before]:
        assert lifecycle.transition(build.pk, after, status_message="changed") is True
        build.refresh_from_db()
        assert (build.status, build.status_message) == (after, "changed")
        rows = OutboxMessage.objects.filter(build=build)
        assert sorted(rows.values_list("handler", flat=True)) == followers
        assert set(rows.values_list("status", flat=True)) <= {after}
    else:
        with pytest.raises(TransitionError) as refused:
            lifecycle.transition(build.pk, after, status_message="changed")
        assert refused.value.current == before
        assert lifecycle.transition(build.pk, after, strict=False) is False
        build.refresh_from_db()
        assert (build.status, build.status_message) == (before, "")
        assert not OutboxMessage.objects.filter(build=build).exists()


def test_every_status_is_in_the_table_and_finished_ones_are_final() -> None:
    assert set(TRANSITIONS) == set(BuildStatus)
    for status in (BuildStatus.SUCCESS, BuildStatus.FAILURE, BuildStatus.ABORTED):
        assert TRANSITIONS[status] == frozenset()


def test_a_caller_may_narrow_the_table_but_never_widen_it(build: Build) -> None:
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.QUEUED)
    # The launcher finishes only a RUNNING build: a QUEUED one is refused though the table
    # lets a lost QUEUED build fail.
    with pytest.raises(TransitionError):
        lifecycle.transition(build.pk, BuildStatus.FAILURE, only_from=[BuildStatus.RUNNING])
    with pytest.raises(TransitionError):
        lifecycle.transition(build.pk, BuildStatus.UNSTABLE, only_from=[BuildStatus.QUEUED])
    assert Build.objects.get(pk=build.pk).status == BuildStatus.QUEUED


def test_a_build_starts_its_life_only_waiting_or_queued(build: Build) -> None:
    with pytest.raises(ValueError, match="cannot start its life RUNNING"):
        lifecycle.create(
            status=BuildStatus.RUNNING, job=build.job, event=build.event, number=2, sha="b" * 40
        )
    assert Build.objects.count() == 1


def _writes_build_status(node: ast.Call) -> bool:
    func = node.func
    if not isinstance(func, ast.Attribute):
        return False
    receiver = ast.unparse(func.value)
    keywords = {k.arg for k in node.keywords}
    if func.attr in {"update", "create", "get_or_create", "update_or_create", "bulk_update"}:
        # Build.objects.filter(...).update(status=...), Build.objects.create(status=...)
        return receiver.startswith(("Build.objects", "Build._default_manager")) and (
            "status" in keywords or func.attr == "bulk_update"
        )
    if func.attr == "save":
        fields = next((k.value for k in node.keywords if k.arg == "update_fields"), None)
        return fields is not None and "'status'" in ast.unparse(fields)
    return False


def test_no_module_but_lifecycle_writes_a_builds_status() -> None:
    base = Path(settings.BASE_DIR)
    writers = []
    for app in ("builds", "pipelines", "scm", "executors", "screwdriver_site"):
        for path in (base / app).rglob("*.py"):
            relative = path.relative_to(base)
            if {"tests", "migrations"} & set(relative.parts):
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            writers += [
                f"{relative}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Call) and _writes_build_status(node)
            ]
    assert writers == [
        f"builds/lifecycle.py:{line}" for line in _lifecycle_writes(base / "builds/lifecycle.py")
    ]


def _lifecycle_writes(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _writes_build_status(node)
    ] or [-1]  # lifecycle must be a writer: an empty list would make the test vacuous

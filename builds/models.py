"""Builds, their steps and their logs."""

from __future__ import annotations

import zlib
from typing import Any

from django.db import models
from django.db.models import Q

from pipelines.models import Event, Job


class BuildStatus(models.TextChoices):
    CREATED = "CREATED"
    QUEUED = "QUEUED"
    BLOCKED = "BLOCKED"
    FROZEN = "FROZEN"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    ABORTED = "ABORTED"
    UNSTABLE = "UNSTABLE"
    COLLAPSED = "COLLAPSED"


FINISHED_STATUSES = frozenset(
    {
        BuildStatus.SUCCESS,
        BuildStatus.FAILURE,
        BuildStatus.ABORTED,
        BuildStatus.UNSTABLE,
        BuildStatus.COLLAPSED,
    }
)
ACTIVE_STATUSES = frozenset(
    {BuildStatus.QUEUED, BuildStatus.RUNNING, BuildStatus.BLOCKED, BuildStatus.FROZEN}
)
# What a finished build means for the jobs after it: these let them run, those never will.
SUCCEEDED_STATUSES = frozenset({BuildStatus.SUCCESS, BuildStatus.UNSTABLE})
FAILED_STATUSES = frozenset({BuildStatus.FAILURE, BuildStatus.ABORTED, BuildStatus.COLLAPSED})


class BuildQuerySet(models.QuerySet["Build"]):
    def active(self) -> BuildQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)

    def with_lapsed_lease(self, now: object) -> BuildQuerySet:
        return self.filter(
            status__in=[BuildStatus.QUEUED, BuildStatus.RUNNING],
            lease_expires_at__isnull=False,
            lease_expires_at__lt=now,
        )


class Build(models.Model):
    """One run of one job (one permutation of it) within one event."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="builds")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="builds")
    permutation = models.PositiveSmallIntegerField(default=0)
    parent_build = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    parent_builds = models.JSONField(default=dict, blank=True)
    number = models.BigIntegerField()
    cause = models.CharField(max_length=512, blank=True, default="")
    sha = models.CharField(max_length=40)
    container = models.CharField(max_length=256, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=BuildStatus.choices, default=BuildStatus.QUEUED
    )
    status_message = models.CharField(max_length=1024, blank=True, default="")
    meta = models.JSONField(default=dict, blank=True)
    environment = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    timeout_seconds = models.FloatField(default=90 * 60)
    executor = models.CharField(max_length=32, default="local")
    # What the executor needs to find the build again (a pid, a container id, a pod name).
    executor_state = models.JSONField(default=dict, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # Renewed by the launcher's heartbeat; the reaper fails builds whose lease lapsed.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When its launcher was handed the credential to clone with: once per build (the value
    # itself is never stored).
    checkout_credential_at = models.DateTimeField(null=True, blank=True)
    # How many times the build was queued again after the infrastructure lost it
    # (`screwdriver.cd/retries`).
    infra_retries = models.PositiveSmallIntegerField(default=0)
    # The job template version its job was merged from when the build was made (Screwdriver's
    # build `templateId`): a template's metrics count its builds by it, whatever the job uses
    # now. No foreign key: a removed version leaves its builds as they were.
    template_id = models.PositiveBigIntegerField(null=True, blank=True)

    objects = BuildQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Decides joins: two parents finishing at once cannot both create the join build.
            models.UniqueConstraint(
                fields=["event", "job", "permutation"], name="one_build_per_job_per_event"
            ),
        ]
        indexes = [
            models.Index(fields=["job", "-id"], name="build_history_of_job"),
            models.Index(fields=["status", "lease_expires_at"], name="build_reaper_scan"),
            models.Index(fields=["template_id", "created_at"], name="build_count_per_template"),
        ]

    def __str__(self) -> str:
        return f"build {self.pk} ({self.status})"

    def job_config(self) -> dict[str, Any]:
        """The job config this build runs: its event's snapshot, else the job's current one."""
        permutations = self.event.job_configs.get(self.job.name) or self.job.permutations
        return permutations[self.permutation] if len(permutations or []) > self.permutation else {}

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def warnings(self) -> list[str] | None:
        """Screwdriver's `build.warning` meta: None when unset or false, else its messages
        (`true` marks the build without one; an object gives one per key, in its order)."""
        own = self.meta.get("build") if isinstance(self.meta, dict) else None
        value = own.get("warning") if isinstance(own, dict) else None
        if value is None or value is False or str(value).strip().lower() in ("", "false"):
            return None
        if value is True or str(value).strip().lower() == "true":
            return []
        if isinstance(value, dict):
            return [str(v) for v in value.values() if v not in (None, "", False)]
        return [str(value)]


class StageBuild(models.Model):
    """One run of a stage within one event; its status follows its jobs' builds."""

    stage = models.ForeignKey("pipelines.Stage", on_delete=models.CASCADE, related_name="builds")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="stage_builds")
    status = models.CharField(
        max_length=10, choices=BuildStatus.choices, default=BuildStatus.RUNNING
    )
    workflow_graph = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["stage", "event"], name="one_stage_build_per_event")
        ]

    def __str__(self) -> str:
        return f"stage build {self.pk} ({self.status})"


class RemoteStart(models.Model):
    """A remote trigger's claim: one run of a job (event, job) starts a pipeline once."""

    source_event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    source_job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey("pipelines.Pipeline", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source_event", "source_job", "pipeline"],
                name="one_remote_start_per_job_run_and_pipeline",
            )
        ]

    def __str__(self) -> str:
        return f"remote start of pipeline {self.pipeline_id} by job {self.source_job_id}"


class OutboxMessage(models.Model):
    """Work that must follow a build's status change, written in the same transaction.

    One row per change and handler; a dispatcher claims it with a conditional UPDATE of
    `due_at`, so a crash after the commit delays the work and never loses it.
    """

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="+")
    handler = models.CharField(max_length=64)
    # The status the build entered.
    status = models.CharField(max_length=10, choices=BuildStatus.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    # When it may be claimed: at once, when a claim lapses, or when a retry is due.
    due_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=1024, blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["done_at", "due_at"], name="outbox_due_for_dispatch")]

    def __str__(self) -> str:
        return f"{self.handler} after build {self.build_id} became {self.status}"


class Step(models.Model):
    """One step of a build, with its exit code and timing."""

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=64)
    command = models.TextField(blank=True, default="")
    code = models.IntegerField(null=True, blank=True)
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    lines = models.IntegerField(default=0)
    # Bytes of stored log lines (a newline each), for the server's step and build caps.
    log_bytes = models.BigIntegerField(default=0)
    # A cap cut this step's log: it got its one truncation line and takes no more lines.
    log_truncated = models.BooleanField(default=False)

    class Meta:
        ordering = ["build_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["build", "name"], name="step_name_unique_in_build")
        ]

    def __str__(self) -> str:
        return f"{self.build_id}:{self.name}"


class LogBatch(models.Model):
    """An append-only, numbered batch of a step's log lines, stored compressed."""

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="log_batches")
    seq = models.PositiveIntegerField()
    first_line = models.PositiveIntegerField()
    line_count = models.PositiveIntegerField()
    # zlib of the raw line bytes joined by "\n": bytes that are not UTF-8 are kept as sent.
    data = models.BinaryField()
    # When each line was written: runs [milliseconds since the epoch, number of lines] (lines
    # read from a step's output together share their time); batches stored before runs hold
    # one number per line.
    times = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step_id", "first_line"]
        constraints = [
            # Makes appends idempotent: a resend of the same batch is a no-op.
            models.UniqueConstraint(fields=["step", "seq"], name="log_batch_once_per_seq"),
            models.CheckConstraint(condition=Q(line_count__gt=0), name="log_batch_not_empty"),
        ]
        indexes = [models.Index(fields=["step", "first_line"], name="log_batch_by_line")]

    def __str__(self) -> str:
        return f"{self.step_id}#{self.seq}"

    @staticmethod
    def pack_block(data: bytes) -> bytes:
        """What `data` (lines joined by "\\n") is stored as."""
        return zlib.compress(data, 6)

    def unpack(self) -> list[bytes]:
        raw = zlib.decompress(bytes(self.data))
        return raw.split(b"\n") if self.line_count else []

    def line_times(self) -> list[int]:
        """The time of each line, in milliseconds since the epoch."""
        times = self.times or []
        if times and isinstance(times[0], list):
            return [t for t, n in times for _ in range(n)]
        return [int(t) for t in times]


class Artifact(models.Model):
    """One file a build published from $SD_ARTIFACTS_DIR; its bytes are in the outputs storage
    under `storage_name` (builds.artifacts)."""

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="artifacts")
    # The file's path under the artifacts folder, POSIX, relative ("reports/index.html").
    path = models.TextField()
    # sha256 of `path`: paths may be longer than an index may be on MariaDB.
    path_key = models.CharField(max_length=64)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["build_id", "path"]
        constraints = [
            models.UniqueConstraint(fields=["build", "path_key"], name="artifact_once_per_path")
        ]
        indexes = [models.Index(fields=["created_at"], name="artifact_by_age")]

    def __str__(self) -> str:
        return f"{self.build_id}:{self.path}"

    @property
    def storage_name(self) -> str:
        return f"artifacts/{self.build_id}/{self.path}"


class Cache(models.Model):
    """One cache of a pipeline (screwdriver.yaml's `cache:`): a path's files, saved by a build
    of the pipeline, an event or a job, kept in the outputs storage (builds.caches)."""

    class Scope(models.TextChoices):
        PIPELINES = "pipelines"
        EVENTS = "events"
        JOBS = "jobs"

    pipeline = models.ForeignKey("pipelines.Pipeline", on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=9, choices=Scope.choices)
    # The id of the pipeline, event or job that `scope` names.
    scope_id = models.BigIntegerField()
    # The path as screwdriver.yaml writes it ("~/.gradle", "$SD_SOURCE_DIR/node_modules"):
    # the same in every build, wherever its workspace is.
    name = models.TextField()
    # sha256 of `name`: names may be longer than an index may be on MariaDB.
    name_key = models.CharField(max_length=64)
    # The archive now in the outputs storage; each save writes a new one, then moves this.
    storage_name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    # The launcher's digest of the files (not of the archive): a build that changed nothing
    # does not send them again.
    digest = models.CharField(max_length=64)
    build = models.ForeignKey(
        Build, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pipeline_id", "scope", "scope_id", "name_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "scope_id", "name_key"], name="cache_once_per_scope_and_name"
            )
        ]
        indexes = [models.Index(fields=["updated_at"], name="cache_by_age")]

    def __str__(self) -> str:
        return f"{self.scope}/{self.scope_id}:{self.name}"


class LiveCount(models.Model):
    """How many build pages one server process follows live, as that process last wrote it.

    Written by `builds.live_count` only; `/metrics` sums the rows written recently, so the
    count covers every process, and one that died stops counting once its row is stale.
    """

    process = models.CharField(max_length=200, unique=True)  # host:pid:random
    connections = models.PositiveIntegerField(default=0)
    seen_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["seen_at"], name="live_counts_seen_recently")]

    def __str__(self) -> str:
        return f"{self.process}: {self.connections}"

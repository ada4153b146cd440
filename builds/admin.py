"""Django admin for builds and steps, with an action that stops builds."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from builds import services
from builds.models import (
    ACTIVE_STATUSES,
    Artifact,
    Build,
    Cache,
    LiveCount,
    LogBatch,
    OutboxMessage,
    RemoteStart,
    StageBuild,
    Step,
)


class StepInline(admin.TabularInline):
    model = Step
    fields = ("position", "name", "code", "start_time", "end_time", "lines")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Build)
class BuildAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "event_id", "status", "executor", "start_time", "end_time"]
    list_filter = ["status", "executor"]
    search_fields = ["sha", "job__name", "job__pipeline__name"]
    list_select_related = ["job"]
    # Status changes go through the services only; the admin shows them.
    readonly_fields = [
        "status",
        "status_message",
        "start_time",
        "end_time",
        "lease_expires_at",
        "dispatched_at",
        "executor_state",
        "meta",
    ]
    inlines = [StepInline]
    actions = ["stop_builds"]

    @admin.action(description="Stop the selected builds")
    def stop_builds(self, request: HttpRequest, queryset: QuerySet[Build]) -> None:
        stopped = 0
        for build_id in queryset.filter(status__in=ACTIVE_STATUSES).values_list("pk", flat=True):
            try:
                services.abort_build(
                    build_id=build_id, message=f"Aborted by {request.user.get_username()}"
                )
                stopped += 1
            except services.TransitionError:
                continue
        self.message_user(request, f"Stopped {stopped} build(s).", messages.SUCCESS)


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    list_display = ["id", "build_id", "name", "code", "start_time", "end_time", "lines"]
    list_filter = ["code"]
    search_fields = ["name", "build__job__name", "build__job__pipeline__name"]
    readonly_fields = ["build", "position", "name", "code", "start_time", "end_time", "lines"]
    # The build page shows steps; the admin lists them for finding odd exit codes.
    raw_id_fields = ["build"]


@admin.register(LogBatch)
class LogBatchAdmin(admin.ModelAdmin):
    """Log batches are append-only: listed to find gaps, never edited."""

    list_display = ["id", "step", "seq", "first_line", "line_count", "created_at"]
    search_fields = ["step__name", "step__build__id"]
    list_select_related = ["step"]
    exclude = ["data", "times"]
    readonly_fields = ["step", "seq", "first_line", "line_count", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False


@admin.register(StageBuild)
class StageBuildAdmin(admin.ModelAdmin):
    # A stage build's status follows its jobs' builds; the admin only shows it.
    list_display = ["id", "stage", "event_id", "status"]
    list_filter = ["status"]
    readonly_fields = ["stage", "event", "status", "workflow_graph"]
    list_select_related = ["stage"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(RemoteStart)
class RemoteStartAdmin(admin.ModelAdmin):
    # Which job run started which pipeline; the unique row is what makes a remote start once.
    list_display = ["id", "source_event_id", "source_job", "pipeline", "created_at"]
    readonly_fields = ["source_event", "source_job", "pipeline", "created_at"]
    list_select_related = ["source_job", "pipeline"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    # What followed each status change: a row still due after minutes, or one given up on
    # with its error, is where to look when a commit status or a remote job never came.
    list_display = ["id", "handler", "build_id", "status", "created_at", "attempts", "done_at"]
    list_filter = ["handler", "status"]
    readonly_fields = [
        "build",
        "handler",
        "status",
        "created_at",
        "due_at",
        "attempts",
        "done_at",
        "error",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    """What builds published; files are written by the upload route only."""

    list_display = ["build_id", "path", "size", "content_type", "created_at"]
    search_fields = ["path"]
    readonly_fields = ["build", "path", "path_key", "size", "sha256", "content_type"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Cache)
class CacheAdmin(admin.ModelAdmin):
    """What builds saved; cleared from the pipeline's options page or the API, which delete the
    stored archive with the row (deleting the row alone would leave the archive behind)."""

    list_display = ["pipeline", "scope", "scope_id", "name", "size", "build"]
    list_filter = ["scope"]
    search_fields = ["name", "pipeline__name"]
    list_select_related = ["pipeline", "build"]
    readonly_fields = [f.name for f in Cache._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(LiveCount)
class LiveCountAdmin(admin.ModelAdmin):
    """Each server process's count of build pages following builds live (`/metrics` sums the
    fresh ones); written by the processes themselves."""

    list_display = ["process", "connections", "seen_at"]
    readonly_fields = [f.name for f in LiveCount._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

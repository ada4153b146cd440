"""Django admin for pipelines, jobs, events, secrets and tokens."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from pipelines.models import Event, Job, Pipeline, Secret, Token


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "checkout_url", "state", "hook_installed", "created_at"]
    list_filter = ["state", "scm_context", "hook_installed"]
    search_fields = ["name", "checkout_url"]
    readonly_fields = ["last_event", "last_seen_sha", "workflow_graph", "created_at"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "pipeline", "state", "archived"]
    list_filter = ["state", "archived"]
    search_fields = ["name", "pipeline__name"]
    list_select_related = ["pipeline"]
    actions = ["disable_jobs", "enable_jobs"]

    @admin.action(description="Disable the selected jobs")
    def disable_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        queryset.update(
            state=Job.State.DISABLED,
            state_changer=request.user.get_username(),
            state_change_time=timezone.now(),
            state_change_message="Disabled from the admin",
        )

    @admin.action(description="Enable the selected jobs")
    def enable_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        queryset.update(
            state=Job.State.ENABLED,
            state_changer=request.user.get_username(),
            state_change_time=timezone.now(),
            state_change_message="Enabled from the admin",
        )


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "pipeline", "sha", "start_from", "status", "created_at"]
    list_filter = ["status", "type"]
    search_fields = ["sha", "pipeline__name", "cause_message"]
    list_select_related = ["pipeline"]
    readonly_fields = ["workflow_graph", "job_configs", "meta", "commit", "creator"]


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    list_display = ["id", "pipeline", "name", "allow_in_pr", "created_at"]
    search_fields = ["name", "pipeline__name"]
    # The value is never shown back, not even encrypted.
    exclude = ["encrypted_value"]
    list_select_related = ["pipeline"]


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "user", "pipeline", "last_used", "created_at"]
    search_fields = ["name", "user__username"]
    exclude = ["hash"]
    list_select_related = ["user", "pipeline"]

"""Django admin for builds and steps, with an action that stops builds."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from builds import services
from builds.models import ACTIVE_STATUSES, Build, Step


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

"""Django admin: the notices sent (or not) and the pull request comments, read-only."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from notifications.models import Notice, PullRequestComment


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = ["id", "build_id", "status", "channel", "recipient", "state", "attempts"]
    list_filter = ["state", "channel", "status"]
    search_fields = ["recipient", "error"]
    # Notices are written by the outbox handler only.
    readonly_fields = [f.name for f in Notice._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(PullRequestComment)
class PullRequestCommentAdmin(admin.ModelAdmin):
    list_display = ["id", "pipeline_id", "pr_num", "job_name", "keyword", "comment_id", "build_id"]
    search_fields = ["job_name", "comment_id"]
    readonly_fields = [f.name for f in PullRequestComment._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

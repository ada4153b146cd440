"""Django admin for webhook deliveries: read-only, to see what an SCM sent and what it did."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from scm.models import ScmAccount, ScmRole, WebhookDelivery


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "scm", "event_name", "action", "repository", "outcome", "received_at"]
    list_filter = ["scm", "event_name", "outcome"]
    search_fields = ["delivery_id", "repository"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: WebhookDelivery | None = None
    ) -> bool:
        return False


@admin.register(ScmAccount)
class ScmAccountAdmin(admin.ModelAdmin):
    # The encrypted token is never shown; deleting the row signs the person out of the SCM.
    list_display = ["id", "user", "scm_context", "username", "updated_at"]
    fields = ("user", "scm_context", "username", "updated_at")
    readonly_fields = ("user", "scm_context", "username", "updated_at")
    search_fields = ["username", "user__username"]
    list_select_related = ["user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ScmRole)
class ScmRoleAdmin(admin.ModelAdmin):
    # Cached answers of the SCM; deleting one makes the next request ask again.
    list_display = ["id", "user", "pipeline", "role", "checked_at"]
    readonly_fields = ["user", "pipeline", "role", "checked_at"]
    list_select_related = ["user", "pipeline"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

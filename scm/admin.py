"""Django admin for webhook deliveries: read-only, to see what an SCM sent and what it did."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from scm.models import WebhookDelivery


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

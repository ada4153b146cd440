"""/v4 routes of the scm app."""

from __future__ import annotations

from django.urls import path

from scm.api import views

urlpatterns = [
    path("webhooks", views.WebhookView.as_view(), name="webhooks"),
    path("webhooks/local", views.LocalHookView.as_view(), name="webhook-local"),
]

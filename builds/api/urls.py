"""/v4 routes of the builds app."""

from __future__ import annotations

from django.urls import path

from builds.api import views

urlpatterns = [
    path("builds/<int:build_id>", views.BuildDetailView.as_view(), name="build-detail"),
    path("builds/<int:build_id>/launch", views.BuildLaunchView.as_view(), name="build-launch"),
    path(
        "builds/<int:build_id>/heartbeat",
        views.BuildHeartbeatView.as_view(),
        name="build-heartbeat",
    ),
    path("builds/<int:build_id>/steps", views.StepListView.as_view(), name="build-steps"),
    path(
        "builds/<int:build_id>/steps/<str:name>", views.StepDetailView.as_view(), name="build-step"
    ),
    path(
        "builds/<int:build_id>/steps/<str:name>/logs",
        views.StepLogsView.as_view(),
        name="build-step-logs",
    ),
]

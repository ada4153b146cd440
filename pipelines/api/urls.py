"""/v4 routes of the pipelines app."""

from __future__ import annotations

from django.urls import path

from pipelines.api import views

urlpatterns = [
    path("status", views.StatusView.as_view(), name="status"),
    path("auth/token", views.AuthTokenView.as_view(), name="auth-token"),
    path("pipelines", views.PipelineListView.as_view(), name="pipeline-list"),
    path("pipelines/<int:pipeline_id>", views.PipelineDetailView.as_view(), name="pipeline-detail"),
    path(
        "pipelines/<int:pipeline_id>/jobs", views.PipelineJobsView.as_view(), name="pipeline-jobs"
    ),
    path(
        "pipelines/<int:pipeline_id>/events",
        views.PipelineEventsView.as_view(),
        name="pipeline-events",
    ),
    path("jobs/<int:job_id>", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<int:job_id>/builds", views.JobBuildsView.as_view(), name="job-builds"),
    path("events", views.EventCreateView.as_view(), name="event-create"),
    path("events/<int:event_id>", views.EventDetailView.as_view(), name="event-detail"),
    path("events/<int:event_id>/builds", views.EventBuildsView.as_view(), name="event-builds"),
    path("events/<int:event_id>/stop", views.EventStopView.as_view(), name="event-stop"),
    path("validator", views.ValidatorView.as_view(), name="validator"),
]

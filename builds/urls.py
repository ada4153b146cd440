"""UI routes of builds, in Screwdriver's UI URL shape."""

from __future__ import annotations

from django.urls import URLPattern, path

from builds import prometheus, views

app_name = "builds"

B = "pipelines/<id:pipeline_id>/builds/<id:build_id>"
J = "pipelines/<id:pipeline_id>/jobs/<str:job_name>"

urlpatterns: list[URLPattern] = [
    path(B, views.build_detail, name="detail"),
    path(f"{B}/log.txt", views.build_log, name="log"),
    path(f"{B}/stop", views.build_stop, name="stop"),
    path(f"{B}/artifacts", views.build_artifacts, name="artifacts"),
    path(f"{B}/artifacts/<path:artifact_path>", views.build_artifacts, name="artifact"),
    # Permalinks: the job's latest build (Screwdriver's UI has it at the job's own address),
    # and its latest successful build's artifacts.
    path(J, views.job_latest, name="job"),
    path(f"{J}/latest", views.job_latest, name="job-latest"),
    path(f"{J}/artifacts", views.job_artifact, name="job-artifacts"),
    path(f"{J}/artifacts/<path:artifact_path>", views.job_artifact, name="job-artifact"),
    path("metrics", prometheus.metrics_view, name="metrics"),
]

"""/v4 routes of the builds app."""

from __future__ import annotations

from django.urls import path

from builds.api import artifact_uploads, artifact_view, artifacts, caches, log_download, views

B = "builds/<id:build_id>"

urlpatterns = [
    path(B, views.BuildDetailView.as_view(), name="build-detail"),
    path(f"{B}/launch", views.BuildLaunchView.as_view(), name="build-launch"),
    path(f"{B}/heartbeat", views.BuildHeartbeatView.as_view(), name="build-heartbeat"),
    path(
        f"{B}/caches/<str:scope>/<path:name>", caches.BuildCacheView.as_view(), name="build-cache"
    ),
    path(
        "pipelines/<id:pipeline_id>/caches",
        caches.PipelineCachesView.as_view(),
        name="pipeline-caches",
    ),
    path(f"{B}/token", views.BuildTokenView.as_view(), name="build-token"),
    path(
        f"{B}/checkout-credential",
        views.BuildCheckoutCredentialView.as_view(),
        name="build-checkout-credential",
    ),
    path(f"{B}/secrets", views.BuildSecretsView.as_view(), name="build-secrets"),
    path(f"{B}/logs", log_download.BuildLogView.as_view(), name="build-logs"),
    path(f"{B}/steps", views.StepListView.as_view(), name="build-steps"),
    path(f"{B}/steps/<str:name>", views.StepDetailView.as_view(), name="build-step"),
    path(f"{B}/steps/<str:name>/logs", views.StepLogsView.as_view(), name="build-step-logs"),
    path(f"{B}/artifacts", artifacts.BuildArtifactsView.as_view(), name="build-artifacts"),
    path(
        f"{B}/artifacts.zip",
        artifact_uploads.ArtifactZipUploadView.as_view(),
        name="build-artifacts-zip-upload",
    ),
    path(
        f"{B}/artifacts/<path:artifact_path>",
        artifact_uploads.ArtifactView.as_view(),
        name="build-artifact",
    ),
    # A capability address: the token, not the caller, grants (builds.artifact_links).
    path(
        f"{B}/artifacts-view/<str:token>/",
        artifact_view.ArtifactCapabilityView.as_view(),
        name="build-artifact-view-index",
    ),
    path(
        f"{B}/artifacts-view/<str:token>/<path:artifact_path>",
        artifact_view.ArtifactCapabilityView.as_view(),
        name="build-artifact-view",
    ),
]

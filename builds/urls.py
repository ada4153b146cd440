"""UI routes of builds, in Screwdriver's UI URL shape."""

from __future__ import annotations

from django.urls import URLPattern, path

from builds import views

app_name = "builds"

urlpatterns: list[URLPattern] = [
    path(
        "pipelines/<id:pipeline_id>/builds/<id:build_id>",
        views.build_detail,
        name="detail",
    ),
    path(
        "pipelines/<id:pipeline_id>/builds/<id:build_id>/stop",
        views.build_stop,
        name="stop",
    ),
]

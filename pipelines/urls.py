"""UI routes of pipelines, in Screwdriver's UI URL shapes, and the sign-in routes."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, path
from django.views.generic import RedirectView

from pipelines import (
    views,
    views_badges,
    views_commands,
    views_metrics,
    views_pulls,
    views_settings,
    views_templates,
)

app_name = "pipelines"

P = "pipelines/<id:pipeline_id>"

urlpatterns: list[URLPattern] = [
    path("pipelines", views.pipeline_list, name="list"),
    path("collections", views.collection_create, name="collection-create"),
    path(
        "collections/<id:collection_id>/delete",
        views.collection_delete,
        name="collection-delete",
    ),
    path(f"{P}/collections", views.pipeline_collection, name="collection"),
    path(P, views.pipeline_detail, name="detail"),
    path(f"{P}/events", views.pipeline_detail, name="events"),
    path(f"{P}/events/<id:event_id>", views.pipeline_detail, name="event"),
    path(f"{P}/events/<id:event_id>/restart", views.event_restart, name="event-restart"),
    path(f"{P}/events/<id:event_id>/stop", views.event_stop, name="event-stop"),
    path(f"{P}/start", views.pipeline_start, name="start"),
    path(f"{P}/startall", views.pipeline_start_all, name="start-all"),
    path(f"{P}/jobs", views.pipeline_jobs, name="jobs"),
    path(f"{P}/badge", views_badges.pipeline_badge, name="badge"),
    path(f"{P}/metrics", views_metrics.pipeline_metrics, name="metrics"),
    path(f"{P}/pulls", views_pulls.pipeline_pulls, name="pulls"),
    path(f"{P}/pulls/<id:pr_num>", views_pulls.pipeline_pull, name="pull"),
    path(f"{P}/<str:job_name>/badge", views_badges.job_badge, name="job-badge"),
    path(f"{P}/secrets", views_settings.pipeline_secrets, name="secrets"),
    path(f"{P}/secrets/<id:secret_id>", views_settings.secret_update, name="secret-update"),
    path(f"{P}/secrets/<id:secret_id>/delete", views_settings.secret_delete, name="secret-delete"),
    path(f"{P}/tokens", views_settings.pipeline_tokens, name="tokens"),
    path(
        f"{P}/tokens/<id:token_id>/<str:action>",
        views_settings.pipeline_token_action,
        name="token-action",
    ),
    path(f"{P}/options", views_settings.pipeline_options, name="options"),
    path(f"{P}/options/jobs/<id:job_id>", views_settings.job_state, name="job-state"),
    path(f"{P}/options/sync", views_settings.pipeline_sync, name="sync"),
    path(f"{P}/options/delete", views_settings.pipeline_delete, name="delete"),
    path(f"{P}/options/caches", views_settings.pipeline_clear_caches, name="clear-caches"),
    path("user-settings", views_settings.user_settings, name="user-settings"),
    path(
        "user-settings/tokens/<id:token_id>/<str:action>",
        views_settings.user_token_action,
        name="user-token-action",
    ),
]

# Not namespaced, because settings name them plainly (LOGIN_URL = "login",
# LOGOUT_REDIRECT_URL = "login"): the root URLconf includes them on their own with
# `path("", include(auth_urlpatterns))`.
auth_urlpatterns: list[URLPattern] = [
    path("", RedirectView.as_view(pattern_name="pipelines:list"), name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]

# Paste a screwdriver.yaml and see what the parser makes of it.
urlpatterns.append(path("validator", views.validator, name="validator"))
urlpatterns += [
    path("commands", views_commands.command_list, name="commands"),
    path("commands/<slug:namespace>/<slug:name>", views_commands.command_detail, name="command"),
    path("templates", views_templates.template_list, name="templates"),
    path(
        "templates/<slug:namespace>/<slug:name>",
        views_templates.template_detail,
        name="template",
    ),
    path(
        "pipeline-templates",
        views_templates.pipeline_template_list,
        name="pipeline-templates",
    ),
    path(
        "pipeline-templates/<str:namespace>/<str:name>",
        views_templates.pipeline_template_detail,
        name="pipeline-template",
    ),
    path(
        "pipeline-templates/<str:namespace>/<str:name>/trusted",
        views_templates.pipeline_template_trusted,
        name="pipeline-template-trusted",
    ),
]

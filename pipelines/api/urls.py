"""/v4 routes of the pipelines app, in Screwdriver's paths."""

from __future__ import annotations

from django.urls import path

from pipelines.api.views import (
    auth,
    badges,
    collections,
    commands,
    jobs_events,
    metrics,
    pipeline_templates,
    pipelines,
    secrets_tokens,
    stages,
    templates,
)

P = "pipelines/<id:pipeline_id>"
PT = "pipeline/template/<str:namespace>/<str:name>"
PTS = "pipeline/templates/<str:namespace>/<str:name>"

urlpatterns = [
    path("status", auth.StatusView.as_view(), name="status"),
    path("versions", auth.VersionsView.as_view(), name="versions"),
    path("auth/token", auth.AuthTokenView.as_view(), name="auth-token"),
    path("auth/login", auth.AuthLoginView.as_view(), name="auth-login"),
    path("auth/login/guest", auth.GuestLoginView.as_view(), name="auth-login-guest"),
    path("auth/logout", auth.AuthLogoutView.as_view(), name="auth-logout"),
    path("auth/contexts", auth.AuthContextsView.as_view(), name="auth-contexts"),
    path("validator", auth.ValidatorView.as_view(), name="validator"),
    path(
        "validator/template",
        templates.TemplateValidatorView.as_view(),
        name="validator-template",
    ),
    path("validator/command", commands.CommandValidatorView.as_view(), name="validator-command"),
    path("commands", commands.CommandListView.as_view(), name="command-list"),
    path(
        "commands/<slug:namespace>/<slug:name>",
        commands.CommandVersionsView.as_view(),
        name="command",
    ),
    path(
        "commands/<slug:namespace>/<slug:name>/tags",
        commands.CommandTagsView.as_view(),
        name="command-tags",
    ),
    path(
        "commands/<slug:namespace>/<slug:name>/tags/<str:tag>",
        commands.CommandTagView.as_view(),
        name="command-tag",
    ),
    path(
        "commands/<slug:namespace>/<slug:name>/trusted",
        commands.CommandTrustedView.as_view(),
        name="command-trusted",
    ),
    path(
        "commands/<slug:namespace>/<slug:name>/<str:version_or_tag>",
        commands.CommandDetailView.as_view(),
        name="command-version",
    ),
    path(
        "commands/<slug:namespace>/<slug:name>/<str:version_or_tag>/binary",
        commands.CommandBinaryView.as_view(),
        name="command-binary",
    ),
    path("templates", templates.TemplateListView.as_view(), name="template-list"),
    path("templates/<template:name>", templates.TemplateVersionsView.as_view(), name="template"),
    path(
        "templates/<template:name>/tags",
        templates.TemplateTagsView.as_view(),
        name="template-tags",
    ),
    path(
        "templates/<template:name>/tags/<str:tag>",
        templates.TemplateTagView.as_view(),
        name="template-tag",
    ),
    path(
        "templates/<template:name>/trusted",
        templates.TemplateTrustedView.as_view(),
        name="template-trusted",
    ),
    path(
        "templates/<template:name>/versions/<str:version>",
        templates.TemplateVersionRemoveView.as_view(),
        name="template-version-remove",
    ),
    path(
        "templates/<template:name>/metrics",
        templates.TemplateMetricsView.as_view(),
        name="template-metrics",
    ),
    path(
        "templates/<template:name>/<str:version_or_tag>/usage/pipelines",
        templates.TemplateUsageView.as_view(),
        name="template-usage",
    ),
    path("template/<id:template_id>", templates.TemplateByIdView.as_view(), name="template-by-id"),
    path(
        "templates/<template:name>/<str:version_or_tag>",
        templates.TemplateDetailView.as_view(),
        name="template-version",
    ),
    path(
        "pipeline/template",
        pipeline_templates.PipelineTemplateCreateView.as_view(),
        name="pipeline-template-create",
    ),
    path(
        "pipeline/template/validate",
        pipeline_templates.PipelineTemplateValidateView.as_view(),
        name="pipeline-template-validate",
    ),
    path(
        "pipeline/templates",
        pipeline_templates.PipelineTemplateListView.as_view(),
        name="pipeline-template-list",
    ),
    path(
        "pipeline/template/<id:template_id>",
        pipeline_templates.PipelineTemplateByIdView.as_view(),
        name="pipeline-template-by-id",
    ),
    # Screwdriver's plural paths: the lists of versions and tags, removals, the trusted mark.
    path(
        PTS,
        pipeline_templates.PipelineTemplateRemoveView.as_view(),
        name="pipeline-template-remove",
    ),
    path(
        f"{PTS}/versions",
        pipeline_templates.PipelineTemplateVersionsView.as_view(),
        name="pipeline-template-versions",
    ),
    path(
        f"{PTS}/versions/<str:version>",
        pipeline_templates.PipelineTemplateVersionRemoveView.as_view(),
        name="pipeline-template-version-remove",
    ),
    path(
        f"{PTS}/tags",
        pipeline_templates.PipelineTemplateTagsView.as_view(),
        name="pipeline-template-tags",
    ),
    path(
        f"{PTS}/tags/<str:tag>",
        pipeline_templates.PipelineTemplateTagRemoveView.as_view(),
        name="pipeline-template-tag-remove",
    ),
    path(
        f"{PTS}/trusted",
        pipeline_templates.PipelineTemplateTrustedView.as_view(),
        name="pipeline-template-trusted",
    ),
    # Screwdriver's singular paths: one template, a version, tagging.
    path(
        f"{PT}",
        pipeline_templates.PipelineTemplateView.as_view(),
        name="pipeline-template",
    ),
    # Aliases of the plural lists this server answered first; they hide tags named
    # `versions` and `tags` from GET {PT}/{versionOrTag}.
    path(
        f"{PT}/versions",
        pipeline_templates.PipelineTemplateVersionsView.as_view(),
        name="pipeline-template-versions-alias",
    ),
    path(
        f"{PT}/tags",
        pipeline_templates.PipelineTemplateTagsView.as_view(),
        name="pipeline-template-tags-alias",
    ),
    path(
        f"{PT}/tags/<str:tag>",
        pipeline_templates.PipelineTemplateTagView.as_view(),
        name="pipeline-template-tag",
    ),
    path(
        f"{PT}/<str:version_or_tag>",
        pipeline_templates.PipelineTemplateVersionView.as_view(),
        name="pipeline-template-version",
    ),
    path("pipelines", pipelines.PipelineListView.as_view(), name="pipeline-list"),
    path(P, pipelines.PipelineDetailView.as_view(), name="pipeline-detail"),
    path(f"{P}/sync", pipelines.PipelineSyncView.as_view(), name="pipeline-sync"),
    path(f"{P}/startall", pipelines.PipelineStartAllView.as_view(), name="pipeline-startall"),
    path(f"{P}/jobs", pipelines.PipelineJobsView.as_view(), name="pipeline-jobs"),
    path(f"{P}/events", pipelines.PipelineEventsView.as_view(), name="pipeline-events"),
    path(f"{P}/metrics", metrics.PipelineMetricsView.as_view(), name="pipeline-metrics"),
    path(f"{P}/stages", stages.PipelineStagesView.as_view(), name="pipeline-stages"),
    path(f"{P}/builds", pipelines.PipelineBuildsView.as_view(), name="pipeline-builds"),
    path(
        f"{P}/latestBuild",
        pipelines.PipelineLatestBuildView.as_view(),
        name="pipeline-latest-build",
    ),
    path(f"{P}/badge", badges.PipelineBadgeView.as_view(), name="pipeline-badge"),
    path(f"{P}/<str:job_name>/badge", badges.JobBadgeView.as_view(), name="job-badge"),
    path(
        f"{P}/jobs/<str:job_name>/lastSuccessfulMeta",
        jobs_events.PipelineJobLastSuccessfulMetaView.as_view(),
        name="pipeline-job-last-successful-meta",
    ),
    path(
        f"{P}/permissions",
        pipelines.PipelinePermissionsView.as_view(),
        name="pipeline-permissions",
    ),
    path(
        f"{P}/permissions/<str:username>",
        pipelines.PipelinePermissionView.as_view(),
        name="pipeline-permission",
    ),
    path(f"{P}/secrets", secrets_tokens.PipelineSecretsView.as_view(), name="pipeline-secrets"),
    path(
        f"{P}/deploykey",
        secrets_tokens.PipelineDeployKeyView.as_view(),
        name="pipeline-deploy-key",
    ),
    path(f"{P}/tokens", secrets_tokens.PipelineTokensView.as_view(), name="pipeline-tokens"),
    path(
        f"{P}/tokens/<id:token_id>",
        secrets_tokens.PipelineTokenDetailView.as_view(),
        name="pipeline-token",
    ),
    path(
        f"{P}/tokens/<id:token_id>/refresh",
        secrets_tokens.PipelineTokenRefreshView.as_view(),
        name="pipeline-token-refresh",
    ),
    path("jobs/<id:job_id>", jobs_events.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<id:job_id>/badge", badges.JobIdBadgeView.as_view(), name="job-id-badge"),
    path("jobs/<id:job_id>/metrics", metrics.JobMetricsView.as_view(), name="job-metrics"),
    path("jobs/<id:job_id>/builds", jobs_events.JobBuildsView.as_view(), name="job-builds"),
    path(
        "jobs/<id:job_id>/latestBuild",
        jobs_events.JobLatestBuildView.as_view(),
        name="job-latest-build",
    ),
    path(
        "jobs/<id:job_id>/lastSuccessfulMeta",
        jobs_events.JobLastSuccessfulMetaView.as_view(),
        name="job-last-successful-meta",
    ),
    path("events", jobs_events.EventCreateView.as_view(), name="event-create"),
    path("events/<id:event_id>", jobs_events.EventDetailView.as_view(), name="event-detail"),
    path("events/<id:event_id>/builds", jobs_events.EventBuildsView.as_view(), name="event-builds"),
    path("events/<id:event_id>/metrics", metrics.EventMetricsView.as_view(), name="event-metrics"),
    path("events/<id:event_id>/stop", jobs_events.EventStopView.as_view(), name="event-stop"),
    path(
        "events/<id:event_id>/stageBuilds",
        stages.EventStageBuildsView.as_view(),
        name="event-stage-builds",
    ),
    path("secrets", secrets_tokens.SecretCreateView.as_view(), name="secret-create"),
    path("secrets/<id:secret_id>", secrets_tokens.SecretDetailView.as_view(), name="secret-detail"),
    path("collections", collections.CollectionListView.as_view(), name="collection-list"),
    path(
        "collections/<id:collection_id>",
        collections.CollectionDetailView.as_view(),
        name="collection",
    ),
    path("tokens", secrets_tokens.UserTokensView.as_view(), name="token-list"),
    path("tokens/<id:token_id>", secrets_tokens.UserTokenDetailView.as_view(), name="token"),
    path(
        "tokens/<id:token_id>/refresh",
        secrets_tokens.UserTokenRefreshView.as_view(),
        name="token-refresh",
    ),
]

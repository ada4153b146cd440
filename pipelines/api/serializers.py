"""Screwdriver-shaped JSON for pipelines, jobs and events (camelCase; absent, never null)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.validators import URLValidator
from rest_framework import serializers

from pipelines.config.jsvalues import holds_lone_surrogate
from scm.base import ScmError, check_root_dir
from screwdriver_site.ids import count_field, id_field


def unicode_text(value: str) -> None:
    """Refuse text holding a lone UTF-16 surrogate (a JSON "\\ud800"): no parser or answer can
    carry it, so it is a 400 here rather than a 500 later."""
    if holds_lone_surrogate(value):
        raise serializers.ValidationError("The text is not valid Unicode: fix its encoding.")


class ScrewdriverTime(serializers.DateTimeField):
    """ISO 8601 in UTC with milliseconds and Z, as Screwdriver writes times."""

    def to_representation(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CompactSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Leaves out empty optional fields, as Screwdriver does, instead of sending nulls."""

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        return {key: value for key, value in data.items() if value is not None}


def scm_context_of(stored: str) -> str:
    """Screwdriver's `scm:host` form of an SCM context ("local" becomes "local:localhost")."""
    return stored if ":" in stored else f"{stored}:localhost"


class PipelineSerializer(CompactSerializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    scmUri = serializers.CharField(source="scm_uri")
    scmContext = serializers.SerializerMethodField()
    scmRepo = serializers.JSONField(source="scm_repo")
    checkoutUrl = serializers.CharField(source="checkout_url")
    createTime = ScrewdriverTime(source="created_at")
    admins = serializers.SerializerMethodField()
    workflowGraph = serializers.JSONField(source="workflow_graph")
    annotations = serializers.JSONField()
    parameters = serializers.JSONField()
    lastEventId = serializers.IntegerField(source="last_event_id")
    state = serializers.CharField()
    stateChanger = serializers.CharField(source="state_changer")
    stateChangeTime = ScrewdriverTime(source="state_change_time")
    stateChangeMessage = serializers.CharField(source="state_change_message")
    settings = serializers.JSONField()
    badges = serializers.JSONField()
    configPipelineId = serializers.IntegerField(source="config_pipeline_id")
    childPipelines = serializers.JSONField(source="child_pipelines_config")
    subscribedScmUrlsWithActions = serializers.JSONField(source="subscribed_scm_urls")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        for key in ("stateChanger", "stateChangeMessage"):
            if data.get(key) == "":
                data.pop(key)
        for key in ("badges", "childPipelines", "subscribedScmUrlsWithActions"):
            if not data.get(key):
                data.pop(key, None)
        return data

    def get_scmContext(self, pipeline: Any) -> str:
        return scm_context_of(pipeline.scm_context)

    def get_admins(self, pipeline: Any) -> dict[str, bool]:
        # Screwdriver's `admins` map, kept for its clients; the rights live in permissions.
        rows = getattr(pipeline, "admin_permissions", None)
        if rows is None:
            rows = pipeline.permissions.filter(role="admin").select_related("user")
        return {row.user.get_username(): True for row in rows}


class PipelineCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    checkoutUrl = serializers.CharField(max_length=1024)
    rootDir = serializers.CharField(max_length=512, required=False, allow_blank=True)

    def validate_rootDir(self, value: str) -> str:
        # As Screwdriver's API: leading slashes are dropped, and "/" is the repository's top.
        value = value.lstrip("/")
        try:
            return check_root_dir(value) if value else ""
        except ScmError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class PipelineSettingsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Screwdriver's pipeline settings; unknown keys are refused, not stored."""

    public = serializers.BooleanField(required=False)
    groupedEvents = serializers.BooleanField(required=False)
    showEventTriggers = serializers.BooleanField(required=False)
    filterEventsForNoBuilds = serializers.BooleanField(required=False)
    filterSchedulerEvents = serializers.BooleanField(required=False)
    aliasName = serializers.CharField(max_length=32, required=False, allow_blank=True)
    metricsDowntimeJobs = serializers.ListField(child=id_field(), required=False)
    metricsDowntimeStatuses = serializers.ListField(
        child=serializers.ChoiceField(choices=["ABORTED", "FAILURE", "SUCCESS"]), required=False
    )

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError(
                    f"unknown settings {', '.join(sorted(map(repr, unknown)))}: "
                    f"use {', '.join(self.fields)}."
                )
        return super().to_internal_value(data)


class BadgeSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(max_length=128)
    uri = serializers.URLField(
        max_length=1024, validators=[URLValidator(schemes=["http", "https"])]
    )


class BadgesSerializer(serializers.Serializer):  # type: ignore[type-arg]
    sonar = BadgeSerializer(required=False)


class PipelineUpdateSerializer(PipelineCreateSerializer):
    """Screwdriver's pipeline update: any of checkoutUrl, settings, badges, state."""

    checkoutUrl = serializers.CharField(max_length=1024, required=False)
    # Accepted for Screwdriver's clients; local repositories need no deploy keys.
    autoKeysGeneration = serializers.BooleanField(required=False)
    settings = PipelineSettingsSerializer(required=False)
    badges = BadgesSerializer(required=False)
    state = serializers.ChoiceField(choices=["ACTIVE", "INACTIVE"], required=False)
    stateChangeMessage = serializers.CharField(max_length=512, required=False, allow_blank=True)


class JobSerializer(CompactSerializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    pipelineId = serializers.IntegerField(source="pipeline_id")
    description = serializers.CharField()
    state = serializers.CharField()
    stateChanger = serializers.CharField(source="state_changer")
    stateChangeTime = ScrewdriverTime(source="state_change_time")
    stateChangeMessage = serializers.CharField(source="state_change_message")
    archived = serializers.BooleanField()
    permutations = serializers.JSONField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        for key in ("description", "stateChanger", "stateChangeMessage"):
            if data.get(key) == "":
                data.pop(key)
        return data


class EventSerializer(CompactSerializer):
    id = serializers.IntegerField()
    pipelineId = serializers.IntegerField(source="pipeline_id")
    parentEventId = serializers.IntegerField(source="parent_event_id")
    groupEventId = serializers.SerializerMethodField()
    type = serializers.CharField()
    causeMessage = serializers.CharField(source="cause_message")
    commit = serializers.SerializerMethodField()
    creator = serializers.JSONField()
    createTime = ScrewdriverTime(source="created_at")
    sha = serializers.CharField()
    startFrom = serializers.CharField(source="start_from")
    baseBranch = serializers.CharField(source="base_branch")
    prNum = serializers.IntegerField(source="pr_num")
    meta = serializers.JSONField()
    workflowGraph = serializers.JSONField(source="workflow_graph")
    status = serializers.CharField()
    configPipelineSha = serializers.CharField(source="config_pipeline_sha")
    subscribedEvent = serializers.BooleanField(source="subscribed_event")
    subscribedConfigSha = serializers.CharField(source="subscribed_config_sha")
    subscribedSourceUrl = serializers.CharField(source="subscribed_source_url")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        for key in ("configPipelineSha", "subscribedConfigSha", "subscribedSourceUrl"):
            if data.get(key) == "":
                data.pop(key)
        if not data.get("subscribedEvent"):
            data.pop("subscribedEvent", None)
        return data

    def get_commit(self, event: Any) -> dict[str, Any]:
        # Screwdriver requires a link to the commit; a local repository has no web page for
        # it, so the link goes to the event's page, which shows the commit.
        commit = dict(event.commit or {})
        if not commit.get("url"):
            commit["url"] = f"{settings.SD_UI_URL}/pipelines/{event.pipeline_id}/events/{event.pk}"
        return commit

    def get_groupEventId(self, event: Any) -> int:
        # An event that starts a group is its own group, as in Screwdriver.
        return int(event.group_event_id or event.pk)


class EventCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    pipelineId = id_field(required=False)
    startFrom = serializers.CharField(max_length=128, required=False)
    causeMessage = serializers.CharField(
        max_length=512, required=False, allow_blank=True, default=""
    )
    sha = serializers.RegexField(r"^[0-9a-f]{40}$", required=False)
    meta = serializers.DictField(required=False, default=dict)
    # Screwdriver's UI sends these as meta.parameters; a top-level field is accepted as well.
    parameters = serializers.DictField(required=False)
    parentEventId = id_field(required=False)
    buildId = id_field(required=False)
    groupEventId = id_field(required=False)
    parentBuildId = id_field(required=False)
    prNum = count_field(low=1, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "prNum" in attrs:
            raise serializers.ValidationError(
                "prNum: pull-request events come from the SCM; restart a pull request's build "
                "with buildId instead."
            )
        restart = "parentEventId" in attrs or "buildId" in attrs
        if attrs.get("startFrom") == "~failed" and not restart:
            raise serializers.ValidationError(
                "startFrom: ~failed restarts the failed jobs of an event; send its parentEventId."
            )
        if "sha" in attrs and restart:
            raise serializers.ValidationError(
                "sha: a restart runs its parent event's sha; leave sha out."
            )
        return attrs


class JobUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    state = serializers.ChoiceField(choices=["ENABLED", "DISABLED"])
    stateChangeMessage = serializers.CharField(
        max_length=512, required=False, allow_blank=True, default=""
    )


SECRET_NAME = r"^[A-Z_][A-Z0-9_]*$"  # noqa: S105 - a pattern for names, not a password


class SecretSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A secret as the API shows it: never its value."""

    id = serializers.IntegerField()
    pipelineId = serializers.IntegerField(source="pipeline_id")
    name = serializers.CharField()
    allowInPR = serializers.BooleanField(source="allow_in_pr")


class DeployKeySerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A pipeline's deploy key as its admins see it: the public half only."""

    pipelineId = serializers.IntegerField(source="pipeline_id")
    publicKey = serializers.CharField(source="public_key")
    fingerprint = serializers.CharField()
    createdAt = ScrewdriverTime(source="created_at")
    # False when the operator or the pipeline's screwdriver.yaml no longer asks for it.
    inUse = serializers.BooleanField(source="pipeline.uses_deploy_key")


class SecretCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    pipelineId = id_field()
    name = serializers.RegexField(SECRET_NAME, max_length=64)
    value = serializers.CharField(max_length=65536, trim_whitespace=False, write_only=True)
    allowInPR = serializers.BooleanField(required=False, default=False)


class SecretUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    value = serializers.CharField(
        max_length=65536, trim_whitespace=False, required=False, write_only=True
    )
    allowInPR = serializers.BooleanField(required=False)


class TokenSerializer(CompactSerializer):
    """A token as the API shows it; the value appears only once, at creation or refresh."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    userId = serializers.IntegerField(source="user_id")
    pipelineId = serializers.IntegerField(source="pipeline_id")
    createTime = ScrewdriverTime(source="created_at")
    lastUsed = serializers.SerializerMethodField()

    def get_lastUsed(self, token: Any) -> str:
        # Screwdriver sends "" for a token never used.
        moment = token.last_used
        return ScrewdriverTime().to_representation(moment) if moment else ""


class NewTokenSerializer(TokenSerializer):
    value = serializers.CharField()


class TokenCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(max_length=128)
    description = serializers.CharField(
        max_length=256, required=False, allow_blank=True, default=""
    )


class TokenUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(max_length=128, required=False)
    description = serializers.CharField(max_length=256, required=False, allow_blank=True)


class PermissionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    grantedBy = serializers.CharField(source="granted_by")
    createTime = ScrewdriverTime(source="created_at")


class PermissionUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    role = serializers.ChoiceField(choices=["pull", "push", "admin"])


class LoginSerializer(serializers.Serializer):  # type: ignore[type-arg]
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=1024, trim_whitespace=False, write_only=True)


class ValidatorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    yaml = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=1_000_000)


class TokenResponseSerializer(serializers.Serializer):  # type: ignore[type-arg]
    token = serializers.CharField()


class CollectionSerializer(CompactSerializer):
    id = serializers.IntegerField()
    userId = serializers.IntegerField(source="user_id")
    name = serializers.CharField()
    description = serializers.CharField()
    type = serializers.SerializerMethodField()
    pipelineIds = serializers.SerializerMethodField()

    def get_type(self, collection: Any) -> str:
        return "normal"

    def get_pipelineIds(self, collection: Any) -> list[int]:
        return sorted(p.pk for p in collection.pipelines.all())


class CollectionCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(max_length=128)
    description = serializers.CharField(max_length=256, required=False, allow_blank=True)
    pipelineIds = serializers.ListField(child=id_field(), required=False, max_length=1000)


class CollectionUpdateSerializer(CollectionCreateSerializer):
    name = serializers.CharField(max_length=128, required=False)


class StageSerializer(CompactSerializer):
    id = serializers.IntegerField()
    pipelineId = serializers.IntegerField(source="pipeline_id")
    name = serializers.CharField()
    jobIds = serializers.JSONField(source="job_ids")
    description = serializers.SerializerMethodField()
    setup = serializers.IntegerField(source="setup_id")
    teardown = serializers.IntegerField(source="teardown_id")
    archived = serializers.BooleanField()

    def get_description(self, stage: Any) -> str | None:
        return stage.description or None


class StageBuildSerializer(CompactSerializer):
    id = serializers.IntegerField()
    stageId = serializers.IntegerField(source="stage_id")
    eventId = serializers.IntegerField(source="event_id")
    status = serializers.CharField()


class TemplateSerializer(CompactSerializer):
    """A published job template version, with Screwdriver's template fields."""

    id = serializers.IntegerField()
    namespace = serializers.CharField()
    name = serializers.CharField()
    version = serializers.CharField()
    description = serializers.CharField()
    maintainer = serializers.CharField()
    labels = serializers.JSONField()
    config = serializers.JSONField()
    images = serializers.SerializerMethodField()
    pipelineId = serializers.IntegerField(source="pipeline_id", allow_null=True)
    createTime = ScrewdriverTime(source="created_at")
    trusted = serializers.BooleanField()
    latest = serializers.BooleanField()

    def get_images(self, template: Any) -> dict[str, Any] | None:
        return template.images or None


class PipelineUsageSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A pipeline that uses a template version (Screwdriver's pipelineUsage report; a
    pipeline that never ran has `lastRun: null`)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    scmRepo = serializers.JSONField(source="scm_repo")
    lastRun = serializers.SerializerMethodField()
    admins = serializers.SerializerMethodField()

    def get_lastRun(self, pipeline: Any) -> str | None:
        event = pipeline.last_event
        return None if event is None else ScrewdriverTime().to_representation(event.created_at)

    def get_admins(self, pipeline: Any) -> dict[str, bool]:
        return PipelineSerializer().get_admins(pipeline)


class TemplateTagSerializer(CompactSerializer):
    id = serializers.IntegerField()
    createTime = ScrewdriverTime(source="created_at", allow_null=True)
    namespace = serializers.CharField()
    name = serializers.CharField()
    tag = serializers.CharField()
    version = serializers.CharField()
    templateType = serializers.SerializerMethodField()

    def get_templateType(self, tag: Any) -> str:
        return "JOB"


class TemplateYamlSerializer(serializers.Serializer):  # type: ignore[type-arg]
    yaml = serializers.CharField(
        max_length=512 * 1024, trim_whitespace=False, validators=[unicode_text]
    )


class TemplateTagVersionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    version = serializers.RegexField(r"^\d+\.\d+\.\d+\Z", max_length=16)


class TemplateTrustedSerializer(serializers.Serializer):  # type: ignore[type-arg]
    trusted = serializers.BooleanField()


class CommandSerializer(CompactSerializer):
    """A published command version, with Screwdriver's command fields."""

    id = serializers.IntegerField()
    namespace = serializers.CharField()
    name = serializers.CharField()
    version = serializers.CharField()
    description = serializers.CharField()
    maintainer = serializers.CharField()
    format = serializers.CharField()
    usage = serializers.CharField()
    binary = serializers.SerializerMethodField()
    habitat = serializers.SerializerMethodField()
    docker = serializers.SerializerMethodField()
    pipelineId = serializers.IntegerField(source="pipeline_id", allow_null=True)
    createTime = ScrewdriverTime(source="created_at")
    trusted = serializers.BooleanField()
    latest = serializers.BooleanField()

    def _section(self, command: Any, form: str) -> dict[str, Any] | None:
        return dict(command.spec) if command.format == form else None

    def get_binary(self, command: Any) -> dict[str, Any] | None:
        return self._section(command, "binary")

    def get_habitat(self, command: Any) -> dict[str, Any] | None:
        return self._section(command, "habitat")

    def get_docker(self, command: Any) -> dict[str, Any] | None:
        return self._section(command, "docker")


class CommandTagSerializer(CompactSerializer):
    id = serializers.IntegerField()
    createTime = ScrewdriverTime(source="created_at")
    namespace = serializers.CharField()
    name = serializers.CharField()
    tag = serializers.CharField()
    version = serializers.CharField()


class CommandPublishSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """`spec` is the sd-command.yaml as JSON (or YAML); `file` the binary, where one is needed."""

    spec = serializers.CharField(
        max_length=64 * 1024, trim_whitespace=False, validators=[unicode_text]
    )
    file = serializers.FileField(required=False, allow_empty_file=True)


class PipelineTemplateSerializer(CompactSerializer):
    """A pipeline template's name and owner: Screwdriver's templateMeta of type PIPELINE."""

    id = serializers.IntegerField()
    pipelineId = serializers.IntegerField(source="pipeline_id", allow_null=True)
    namespace = serializers.CharField()
    name = serializers.CharField()
    maintainer = serializers.CharField()
    trustedSinceVersion = serializers.CharField(source="trusted_since_version")
    latestVersion = serializers.CharField(source="latest_version")
    createTime = ScrewdriverTime(source="created_at")
    updateTime = ScrewdriverTime(source="updated_at")
    templateType = serializers.SerializerMethodField()

    def get_templateType(self, template: Any) -> str:
        return "PIPELINE"

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # An unset version is stored empty and left out, as Screwdriver leaves it out.
        data = super().to_representation(instance)
        return {key: value for key, value in data.items() if value != ""}


class PipelineTemplateVersionSerializer(CompactSerializer):
    """One version of a pipeline template (Screwdriver's pipelineTemplateVersions)."""

    id = serializers.IntegerField()
    templateId = serializers.IntegerField(source="template_id")
    description = serializers.CharField()
    version = serializers.CharField()
    config = serializers.JSONField()
    createTime = ScrewdriverTime(source="created_at")
    workflowGraph = serializers.JSONField(source="workflow_graph")


class PipelineTemplateTagSerializer(CompactSerializer):
    id = serializers.IntegerField()
    createTime = ScrewdriverTime(source="created_at")
    namespace = serializers.CharField(source="template.namespace")
    name = serializers.CharField(source="template.name")
    tag = serializers.CharField()
    version = serializers.CharField()
    templateType = serializers.SerializerMethodField()

    def get_templateType(self, tag: Any) -> str:
        return "PIPELINE"

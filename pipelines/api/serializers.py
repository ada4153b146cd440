"""Screwdriver-shaped JSON for pipelines, jobs and events (camelCase; absent, never null)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers


class ScrewdriverTime(serializers.DateTimeField):
    """ISO 8601 in UTC with milliseconds and Z, as Screwdriver writes times."""

    def to_representation(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CompactSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Leaves out empty optional fields, as Screwdriver does, instead of sending nulls."""

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        return {key: value for key, value in data.items() if value is not None}


class PipelineSerializer(CompactSerializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    scmUri = serializers.CharField(source="scm_uri")
    scmContext = serializers.CharField(source="scm_context")
    scmRepo = serializers.JSONField(source="scm_repo")
    checkoutUrl = serializers.CharField(source="checkout_url")
    createTime = ScrewdriverTime(source="created_at")
    admins = serializers.JSONField()
    workflowGraph = serializers.JSONField(source="workflow_graph")
    annotations = serializers.JSONField()
    parameters = serializers.JSONField()
    lastEventId = serializers.IntegerField(source="last_event_id")
    state = serializers.CharField()


class PipelineCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    checkoutUrl = serializers.CharField(max_length=1024)
    rootDir = serializers.CharField(max_length=512, required=False, allow_blank=True)


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
    commit = serializers.JSONField()
    creator = serializers.JSONField()
    createTime = ScrewdriverTime(source="created_at")
    sha = serializers.CharField()
    startFrom = serializers.CharField(source="start_from")
    baseBranch = serializers.CharField(source="base_branch")
    prNum = serializers.IntegerField(source="pr_num")
    meta = serializers.JSONField()
    workflowGraph = serializers.JSONField(source="workflow_graph")
    status = serializers.CharField()

    def get_groupEventId(self, event: Any) -> int:
        # An event that starts a group is its own group, as in Screwdriver.
        return int(event.group_event_id or event.pk)


class EventCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    pipelineId = serializers.IntegerField(min_value=1)
    startFrom = serializers.CharField(max_length=128, required=False, default="~commit")
    causeMessage = serializers.CharField(
        max_length=512, required=False, allow_blank=True, default=""
    )
    sha = serializers.RegexField(r"^[0-9a-f]{40}$", required=False)
    meta = serializers.DictField(required=False, default=dict)

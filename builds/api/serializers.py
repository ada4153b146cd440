"""Screwdriver-shaped JSON for builds and steps."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from pipelines.api.serializers import CompactSerializer, ScrewdriverTime
from screwdriver_site.ids import count_field


class StepSerializer(CompactSerializer):
    id = serializers.IntegerField()
    buildId = serializers.IntegerField(source="build_id")
    name = serializers.CharField()
    command = serializers.CharField()
    code = serializers.IntegerField()
    startTime = ScrewdriverTime(source="start_time")
    endTime = ScrewdriverTime(source="end_time")
    lines = serializers.IntegerField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        if data.get("command") == "":
            data.pop("command")
        return data


class BuildSerializer(CompactSerializer):
    id = serializers.IntegerField()
    jobId = serializers.IntegerField(source="job_id")
    eventId = serializers.IntegerField(source="event_id")
    parentBuildId = serializers.IntegerField(source="parent_build_id")
    parentBuilds = serializers.JSONField(source="parent_builds")
    number = serializers.IntegerField()
    container = serializers.CharField()
    cause = serializers.CharField()
    sha = serializers.CharField()
    createTime = ScrewdriverTime(source="created_at")
    startTime = ScrewdriverTime(source="start_time")
    endTime = ScrewdriverTime(source="end_time")
    meta = serializers.JSONField()
    environment = serializers.JSONField()
    status = serializers.CharField()
    statusMessage = serializers.CharField(source="status_message")
    stats = serializers.JSONField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        if not data.get("statusMessage"):
            data.pop("statusMessage", None)
        if self.context.get("with_steps"):
            data["steps"] = StepSerializer(instance.steps.all(), many=True).data
        return data


class BuildUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    status = serializers.ChoiceField(
        choices=["RUNNING", "SUCCESS", "FAILURE", "UNSTABLE", "ABORTED"]
    )
    meta = serializers.DictField(required=False)
    statusMessage = serializers.CharField(
        max_length=1024, required=False, allow_blank=True, default=""
    )
    # From a launcher whose host stopped it: the signal (the server words the message).
    signal = serializers.ChoiceField(choices=["SIGTERM", "SIGINT", "SIGHUP"], required=False)


class StepUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    startTime = serializers.DateTimeField(required=False)
    endTime = serializers.DateTimeField(required=False)
    code = serializers.IntegerField(required=False, min_value=-255, max_value=255)
    lines = count_field(required=False)


class LogBatchSerializer(serializers.Serializer):  # type: ignore[type-arg]
    seq = count_field()
    firstLine = count_field()
    lines = serializers.ListField(child=serializers.DictField(), allow_empty=False, max_length=1000)


class LogLineSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """One log line as Screwdriver sends it: number, time (ms), message, step."""

    n = serializers.IntegerField()
    t = serializers.IntegerField()
    m = serializers.CharField()
    s = serializers.CharField()


class BuildSecretSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A secret a build's job lists; `value` only in the answer to the build's own token."""

    id = serializers.IntegerField()
    pipelineId = serializers.IntegerField()
    name = serializers.CharField()
    allowInPR = serializers.BooleanField()
    value = serializers.CharField(required=False)

"""Screwdriver-shaped JSON for builds and steps."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
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


class StepUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    startTime = serializers.DateTimeField(required=False)
    endTime = serializers.DateTimeField(required=False)
    code = serializers.IntegerField(required=False, min_value=-255, max_value=255)
    lines = count_field(required=False)


class StepReportSerializer(StepUpdateSerializer):
    """A step's report that a launcher sends with others, or with its build's final status."""

    name = serializers.CharField(max_length=64)


# The most step reports one request carries (a build's steps, each started and ended).
MAX_STEP_REPORTS = 1000


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
    # From a launcher: the reports of steps it had not sent yet, recorded before the status.
    steps = serializers.ListField(
        child=StepReportSerializer(), required=False, max_length=MAX_STEP_REPORTS
    )


@extend_schema_field(
    {
        "type": "array",
        "maxItems": 1000,
        "items": {
            "type": "object",
            "properties": {
                "t": {"type": "integer"},
                "m": {"type": "string"},
                "b": {"type": "string"},
            },
        },
    }
)
class LogLinesField(serializers.JSONField):
    """`[{"t", "m" or "b"}]`, checked line by line where the batch is stored (builds.logs)."""


@extend_schema_field(
    {"type": "array", "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2}}
)
class LogTimesField(serializers.JSONField):
    """Runs `[[t, n], ...]`: n lines written at millisecond t, checked where stored."""


@extend_schema_field({"type": "string", "format": "byte"})
class PackedLinesField(serializers.Field):  # type: ignore[type-arg]
    """Base64 text, taken as it is: a CharField would look at each of its characters in
    Python (20 ms a megabyte), and what it holds is checked where it is unpacked."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("data must be the base64 of the zlib of the lines.")
        return data

    def to_representation(self, value: Any) -> str:
        return str(value)


class LogBatchSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A batch of a step's log: `lines` objects, or packed as `count`, `data` and `times`."""

    seq = count_field()
    firstLine = count_field()
    lines = LogLinesField(required=False)
    count = count_field(required=False)
    # DRF's metaclass takes declared fields out of the class: this does not hide `.data`.
    data = PackedLinesField(required=False)  # type: ignore[assignment]
    times = LogTimesField(required=False)


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

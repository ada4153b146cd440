"""/v4/pipelines/{id}/stages and /v4/events/{id}/stageBuilds: read-only, as in Screwdriver."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from builds.models import StageBuild
from pipelines.api.serializers import StageBuildSerializer, StageSerializer
from pipelines.models import Stage
from screwdriver_site.api.base import ApiView, choice_param, event_for, pipeline_for
from screwdriver_site.api.permissions import PULL, READERS


class PipelineStagesView(ApiView):
    scopes = {"GET": READERS}

    @extend_schema(
        parameters=[OpenApiParameter("archived", OpenApiTypes.BOOL)],
        responses={200: StageSerializer(many=True)},
    )
    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, PULL)
        archived = choice_param(request, "archived", ["true", "false"], "false") == "true"
        stages = Stage.objects.filter(pipeline=pipeline, archived=archived).order_by("name")
        return Response(StageSerializer(stages, many=True).data)


class EventStageBuildsView(ApiView):
    scopes = {"GET": READERS}

    @extend_schema(responses={200: StageBuildSerializer(many=True)})
    def get(self, request: Request, event_id: int) -> Response:
        event = event_for(request, event_id, PULL)
        stage_builds = StageBuild.objects.filter(event=event).order_by("id")
        return Response(StageBuildSerializer(stage_builds, many=True).data)

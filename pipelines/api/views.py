"""The /v4 routes for status, auth, pipelines, jobs, events and the validator."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from rest_framework import status as http
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from builds import services as build_services
from builds.api.serializers import BuildSerializer
from builds.models import Build
from pipelines.api.errors import error_response
from pipelines.api.permissions import IsUser, is_build, require_admin, signed_in_user
from pipelines.api.serializers import (
    EventCreateSerializer,
    EventSerializer,
    JobSerializer,
    PipelineCreateSerializer,
    PipelineSerializer,
)
from pipelines.auth_tokens import issue_user_token
from pipelines.config import parse_pipeline_yaml
from pipelines.models import Event, Job, Pipeline, Token
from pipelines.services import Creator, create_pipeline, start_event, touch_token

MAX_COUNT = 100
DEFAULT_COUNT = 50


def paginate(request: Request, queryset: QuerySet[Any]) -> QuerySet[Any]:
    """Screwdriver's paging: `page` (from 1) and `count`, `sort` ascending or descending."""
    try:
        page = max(1, int(request.query_params.get("page", 1)))
        count = min(MAX_COUNT, max(1, int(request.query_params.get("count", DEFAULT_COUNT))))
    except ValueError:
        raise ValidationError("page and count must be positive integers.") from None
    if request.query_params.get("sort") == "ascending":
        queryset = queryset.order_by("id")
    else:
        queryset = queryset.order_by("-id")
    return queryset[(page - 1) * count : page * count]


class StatusView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        return Response("OK")


class AuthTokenView(APIView):
    """GET /v4/auth/token?api_token=X exchanges an API token (or a session) for a JWT."""

    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        api_token = request.query_params.get("api_token")
        user = request.user if request.user.is_authenticated else None
        if api_token:
            token = Token.objects.matching(api_token).select_related("user").first()
            if token is None or token.user is None or not token.user.is_active:
                return error_response(401, "The API token is not valid: create a new one.")
            touch_token(token)
            user = token.user
        if user is None or is_build(request):
            return error_response(401, "Sign in or pass api_token to get a token.")
        return Response(
            {"token": issue_user_token(username=user.get_username(), is_admin=user.is_superuser)}
        )


class PipelineListView(APIView):
    permission_classes = [IsUser]

    def get(self, request: Request) -> Response:
        pipelines = Pipeline.objects.all()
        search = request.query_params.get("search")
        if search:
            pipelines = pipelines.filter(name__icontains=search)
        return Response(PipelineSerializer(paginate(request, pipelines), many=True).data)

    def post(self, request: Request) -> Response:
        body = PipelineCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        pipeline = create_pipeline(
            checkout_url=body.validated_data["checkoutUrl"], user=signed_in_user(request)
        )
        return Response(PipelineSerializer(pipeline).data, status=http.HTTP_201_CREATED)


class PipelineDetailView(APIView):
    permission_classes = [IsUser]

    def get(self, request: Request, pipeline_id: int) -> Response:
        return Response(PipelineSerializer(get_object_or_404(Pipeline, pk=pipeline_id)).data)


class PipelineJobsView(APIView):
    permission_classes = [IsUser]

    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = get_object_or_404(Pipeline, pk=pipeline_id)
        jobs = Job.objects.filter(pipeline=pipeline).order_by("id")
        archived = request.query_params.get("archived")
        jobs = (
            jobs.filter(archived=archived == "true")
            if archived is not None
            else jobs.filter(archived=False)
        )
        return Response(JobSerializer(jobs, many=True).data)


class PipelineEventsView(APIView):
    permission_classes = [IsUser]

    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = get_object_or_404(Pipeline, pk=pipeline_id)
        events = Event.objects.filter(pipeline=pipeline)
        return Response(EventSerializer(paginate(request, events), many=True).data)


class JobDetailView(APIView):
    permission_classes = [IsUser]

    def get(self, request: Request, job_id: int) -> Response:
        return Response(JobSerializer(get_object_or_404(Job, pk=job_id)).data)


class JobBuildsView(APIView):
    permission_classes = [IsUser]

    def get(self, request: Request, job_id: int) -> Response:
        job = get_object_or_404(Job, pk=job_id)
        builds = paginate(request, Build.objects.filter(job=job)).prefetch_related("steps")
        return Response(BuildSerializer(builds, many=True, context={"with_steps": True}).data)


class EventCreateView(APIView):
    permission_classes = [IsUser]

    def post(self, request: Request) -> Response:
        body = EventCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        pipeline = get_object_or_404(Pipeline, pk=data["pipelineId"])
        require_admin(request, pipeline)
        user = signed_in_user(request)
        event = start_event(
            pipeline=pipeline,
            start_from=data["startFrom"],
            creator=Creator(
                name=user.get_full_name() or user.get_username(), username=user.get_username()
            ),
            sha=data.get("sha"),
            cause_message=data["causeMessage"],
            meta=data["meta"],
        )
        return Response(EventSerializer(event).data, status=http.HTTP_201_CREATED)


class EventDetailView(APIView):
    permission_classes = [IsUser]

    def get(self, request: Request, event_id: int) -> Response:
        return Response(EventSerializer(get_object_or_404(Event, pk=event_id)).data)


class EventBuildsView(APIView):
    permission_classes = [IsUser]

    def get(self, request: Request, event_id: int) -> Response:
        event = get_object_or_404(Event, pk=event_id)
        builds = Build.objects.filter(event=event).order_by("id").prefetch_related("steps")
        return Response(BuildSerializer(builds, many=True, context={"with_steps": True}).data)


class EventStopView(APIView):
    permission_classes = [IsUser]

    def put(self, request: Request, event_id: int) -> Response:
        event = get_object_or_404(Event.objects.select_related("pipeline"), pk=event_id)
        require_admin(request, event.pipeline)
        build_services.stop_event(event=event, message=f"Aborted by {request.user.get_username()}")
        event.refresh_from_db()
        return Response(EventSerializer(event).data)


class ValidatorView(APIView):
    permission_classes = [IsUser]

    def post(self, request: Request) -> Response:
        yaml_text = request.data.get("yaml") if isinstance(request.data, dict) else None
        if not isinstance(yaml_text, str):
            return error_response(400, "Send the file as a string in the yaml field.")
        return Response(parse_pipeline_yaml(yaml_text))

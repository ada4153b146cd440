"""/v4/jobs and /v4/events."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status as http
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from builds import services as build_services
from builds.api.serializers import BuildSerializer
from builds.models import Build, BuildStatus
from pipelines.api.serializers import (
    EventCreateSerializer,
    EventSerializer,
    JobSerializer,
    JobUpdateSerializer,
)
from pipelines.api.views.pipelines import BUILD_STATUSES, with_status_param
from pipelines.models import Event, Job, Pipeline
from pipelines.services import (
    PipelineError,
    creator_of,
    manual_start_refusal,
    restart_event,
    set_job_state,
    start_event,
)
from pipelines.services.pull_requests import pr_restart_refusal
from screwdriver_site.api.base import PAGING_PARAMETERS, ApiView, event_for, job_for, paginate
from screwdriver_site.api.permissions import (
    BUILD,
    PEOPLE_AND_PIPELINES,
    PULL,
    PUSH,
    READERS,
    has_right,
    kind_of,
    require_right,
)


class JobDetailView(ApiView):
    scopes = {"GET": READERS, "PUT": PEOPLE_AND_PIPELINES}

    @extend_schema(responses={200: JobSerializer})
    def get(self, request: Request, job_id: int) -> Response:
        return Response(JobSerializer(job_for(request, job_id, PULL)).data)

    @extend_schema(request=JobUpdateSerializer, responses={200: JobSerializer})
    def put(self, request: Request, job_id: int) -> Response:
        job = job_for(request, job_id, PUSH)
        body = JobUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = set_job_state(
            job=job,
            state=body.validated_data["state"],
            message=body.validated_data["stateChangeMessage"],
            changer=request.user.get_username(),
        )
        return Response(JobSerializer(job).data)


class JobBuildsView(ApiView):
    scopes = {"GET": READERS}

    @extend_schema(
        parameters=[
            *PAGING_PARAMETERS,
            OpenApiParameter("status", OpenApiTypes.STR, enum=BUILD_STATUSES),
        ],
        responses={200: BuildSerializer(many=True)},
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = job_for(request, job_id, PULL)
        builds = with_status_param(request, Build.objects.filter(job=job))
        page = paginate(request, builds).prefetch_related("steps")
        return Response(BuildSerializer(page, many=True, context={"with_steps": True}).data)


class JobLatestBuildView(ApiView):
    scopes = {"GET": READERS}

    @extend_schema(
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=BUILD_STATUSES)],
        responses={200: BuildSerializer},
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = job_for(request, job_id, PULL)
        build = with_status_param(request, Build.objects.filter(job=job)).order_by("-id").first()
        if build is None:
            raise PipelineError(f"Job {job.pk} has no such build yet.", status=404)
        return Response(BuildSerializer(build, context={"with_steps": True}).data)


def _meta_readable(request: Request, pipeline: Pipeline) -> Pipeline:
    """The pipeline, if the caller may read its builds' meta; PermissionDenied otherwise.

    Besides the usual pull right, a build may read the meta of another pipeline's job (for
    `meta get --external`) only when that pipeline is public: a private pipeline's meta never
    reaches a build of another pipeline, whoever wrote that build's steps.
    """
    if kind_of(request) == BUILD and pipeline.is_public:
        return pipeline
    require_right(request, pipeline, PULL)
    return pipeline


def _last_successful_meta(job: Job) -> dict[str, Any]:
    meta = (
        Build.objects.filter(job=job, status=BuildStatus.SUCCESS)
        .order_by("-id")
        .values_list("meta", flat=True)
        .first()
    )
    return meta or {}


class JobLastSuccessfulMetaView(ApiView):
    """The meta of the job's last successful build ({} when it has none)."""

    scopes = {"GET": READERS}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, job_id: int) -> Response:
        job = get_object_or_404(Job.objects.select_related("pipeline"), pk=job_id)
        _meta_readable(request, job.pipeline)
        return Response(_last_successful_meta(job))


class PipelineJobLastSuccessfulMetaView(ApiView):
    """The same by pipeline and job name: what `meta get --external sd@PIPELINE:JOB` reads."""

    scopes = {"GET": READERS}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, pipeline_id: int, job_name: str) -> Response:
        # Rights before the job: whoever may not read the pipeline gets the same answer for
        # every name, so its job names do not leak.
        pipeline = _meta_readable(request, get_object_or_404(Pipeline, pk=pipeline_id))
        job = Job.objects.filter(pipeline=pipeline, name=job_name, archived=False).first()
        if job is None:
            raise PipelineError(
                f"Pipeline {pipeline_id} has no job {job_name!r}: check the pipeline id and the "
                "job name in sd@PIPELINE:JOB.",
                status=404,
            )
        return Response(_last_successful_meta(job))


class EventCreateView(ApiView):
    """POST /v4/events: start from a job or trigger, or restart from an earlier event or build."""

    scopes = {"POST": PEOPLE_AND_PIPELINES}

    @extend_schema(request=EventCreateSerializer, responses={201: EventSerializer})
    def post(self, request: Request) -> Response:
        body = EventCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data: dict[str, Any] = body.validated_data
        parent: Event | None = None
        start_from = data.get("startFrom")
        if "buildId" in data:
            build = get_object_or_404(
                Build.objects.select_related("job", "event__pipeline"), pk=data["buildId"]
            )
            parent, start_from = build.event, start_from or build.job.name
        elif "parentEventId" in data:
            parent = get_object_or_404(
                Event.objects.select_related("pipeline"), pk=data["parentEventId"]
            )
        if parent is not None:
            pipeline = parent.pipeline
            if data.get("pipelineId") not in (None, pipeline.pk):
                raise ValidationError(f"pipelineId: the parent event is of pipeline {pipeline.pk}.")
        elif "pipelineId" in data:
            pipeline = get_object_or_404(Pipeline, pk=data["pipelineId"])
        else:
            raise ValidationError(
                "pipelineId: send the pipeline to start (or a parentEventId or buildId)."
            )
        if parent is not None and parent.is_pull_request:
            # A pull request's author may start it again without push rights, where
            # restrictPR restricts nothing (Screwdriver's POST /events).
            require_right(request, pipeline, PULL)
            refusal = pr_restart_refusal(
                event=parent,
                username=request.user.get_username(),
                can_push=has_right(request, pipeline, PUSH),
            )
            if refusal:
                raise PermissionDenied(refusal)
        else:
            require_right(request, pipeline, PUSH)
        refusal = manual_start_refusal(
            pipeline=pipeline,
            start_from=start_from or (parent.start_from if parent else "~commit"),
            parent_event=parent,
        )
        if refusal:
            raise PermissionDenied(refusal)
        if "parameters" in data:
            data["meta"] = build_services.deep_merge(
                data["meta"], {"parameters": data["parameters"]}
            )
        if parent is None:
            event = start_event(
                pipeline=pipeline,
                start_from=start_from or "~commit",
                creator=creator_of(request.user),
                sha=data.get("sha"),
                cause_message=data["causeMessage"],
                meta=data["meta"],
            )
        else:
            event = restart_event(
                parent_event=parent,
                start_from=start_from or parent.start_from,
                creator=creator_of(request.user),
                cause_message=data["causeMessage"],
                meta=data["meta"],
            )
        return Response(EventSerializer(event).data, status=http.HTTP_201_CREATED)


class EventDetailView(ApiView):
    scopes = {"GET": READERS}

    @extend_schema(responses={200: EventSerializer})
    def get(self, request: Request, event_id: int) -> Response:
        return Response(EventSerializer(event_for(request, event_id, PULL)).data)


class EventBuildsView(ApiView):
    scopes = {"GET": READERS}

    @extend_schema(
        parameters=[
            *PAGING_PARAMETERS,
            OpenApiParameter("status", OpenApiTypes.STR, enum=BUILD_STATUSES),
        ],
        responses={200: BuildSerializer(many=True)},
    )
    def get(self, request: Request, event_id: int) -> Response:
        event = event_for(request, event_id, PULL)
        builds = with_status_param(request, Build.objects.filter(event=event))
        page = paginate(request, builds, default_sort="ascending").prefetch_related("steps")
        return Response(BuildSerializer(page, many=True, context={"with_steps": True}).data)


class EventStopView(ApiView):
    scopes = {"PUT": PEOPLE_AND_PIPELINES}

    @extend_schema(request=None, responses={200: EventSerializer})
    def put(self, request: Request, event_id: int) -> Response:
        event = event_for(request, event_id, PUSH)
        build_services.stop_event(event=event, message=f"Aborted by {request.user.get_username()}")
        event.refresh_from_db()
        return Response(EventSerializer(event).data)

"""/v4/pipelines: create, list, read, update, delete, sync, and what hangs off a pipeline."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response

from builds.api.serializers import BuildSerializer
from builds.models import Build, BuildStatus
from pipelines.api.serializers import (
    EventSerializer,
    JobSerializer,
    PermissionSerializer,
    PermissionUpdateSerializer,
    PipelineCreateSerializer,
    PipelineSerializer,
    PipelineUpdateSerializer,
)
from pipelines.models import Event, Job, Pipeline, PipelinePermission
from pipelines.services import (
    PipelineError,
    create_pipeline,
    creator_of,
    delete_pipeline,
    grant_permission,
    revoke_permission,
    start_all_children,
    sync_child_pipelines,
    sync_pipeline,
    update_pipeline,
)
from screwdriver_site.api.base import (
    PAGING_PARAMETERS,
    ApiView,
    choice_param,
    paginate,
    pipeline_for,
)
from screwdriver_site.api.permissions import (
    ADMIN,
    PEOPLE,
    PEOPLE_AND_PIPELINES,
    PULL,
    PUSH,
    READERS,
    readable_pipelines,
    signed_in_user,
)

BUILD_STATUSES = [s.value for s in BuildStatus]
EVENT_STATUSES = [s.value for s in Event.Status]


def with_admins(pipelines: QuerySet[Pipeline]) -> QuerySet[Pipeline]:
    """Pipelines with their admins prefetched, so a list costs the same for any length."""
    admins = PipelinePermission.objects.filter(role=ADMIN).select_related("user")
    return pipelines.prefetch_related(
        Prefetch("permissions", queryset=admins, to_attr="admin_permissions")
    )


class PipelineListView(ApiView):
    scopes = {"GET": READERS, "POST": PEOPLE}

    @extend_schema(
        parameters=[*PAGING_PARAMETERS, OpenApiParameter("search", OpenApiTypes.STR)],
        responses={200: PipelineSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        pipelines = readable_pipelines(request)
        search = request.query_params.get("search")
        if search:
            pipelines = pipelines.filter(name__icontains=search)
        page = paginate(
            request,
            pipelines,
            sort_by={"name": "name", "createTime": "created_at"},
            default_sort="ascending",
        )
        return Response(PipelineSerializer(with_admins(page), many=True).data)

    @extend_schema(request=PipelineCreateSerializer, responses={201: PipelineSerializer})
    def post(self, request: Request) -> Response:
        body = PipelineCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        pipeline = create_pipeline(
            checkout_url=body.validated_data["checkoutUrl"],
            root_dir=body.validated_data.get("rootDir", ""),
            user=signed_in_user(request),
        )
        sync_child_pipelines(parent=pipeline)
        return Response(PipelineSerializer(pipeline).data, status=http.HTTP_201_CREATED)


class PipelineDetailView(ApiView):
    scopes = {"GET": READERS, "PUT": PEOPLE, "DELETE": PEOPLE}

    @extend_schema(responses={200: PipelineSerializer})
    def get(self, request: Request, pipeline_id: int) -> Response:
        return Response(PipelineSerializer(pipeline_for(request, pipeline_id, PULL)).data)

    @extend_schema(request=PipelineUpdateSerializer, responses={200: PipelineSerializer})
    def put(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, ADMIN)
        body = PipelineUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        pipeline = update_pipeline(
            pipeline=pipeline,
            checkout_url=data.get("checkoutUrl"),
            settings=data.get("settings"),
            badges=data.get("badges"),
            state=data.get("state"),
            state_message=data.get("stateChangeMessage", ""),
            changer=request.user.get_username(),
            user=signed_in_user(request),
            root_dir=data.get("rootDir", ""),
        )
        return Response(PipelineSerializer(pipeline).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pipeline_id: int) -> Response:
        delete_pipeline(pipeline=pipeline_for(request, pipeline_id, ADMIN))
        return Response(status=http.HTTP_204_NO_CONTENT)


class PipelineSyncView(ApiView):
    scopes = {"POST": PEOPLE_AND_PIPELINES}

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, pipeline_id: int) -> Response:
        pipeline = sync_pipeline(pipeline=pipeline_for(request, pipeline_id, PUSH))
        sync_child_pipelines(parent=pipeline)
        return Response(status=http.HTTP_204_NO_CONTENT)


class PipelineStartAllView(ApiView):
    """Screwdriver's startAll: `~commit` on every active child pipeline of this parent."""

    scopes = {"POST": PEOPLE}

    @extend_schema(request=None, responses={201: None})
    def post(self, request: Request, pipeline_id: int) -> Response:
        parent = pipeline_for(request, pipeline_id, ADMIN)
        start_all_children(parent=parent, creator=creator_of(request.user))
        return Response(status=http.HTTP_201_CREATED)


class PipelineJobsView(ApiView):
    scopes = {"GET": READERS}

    @extend_schema(
        parameters=[*PAGING_PARAMETERS, OpenApiParameter("archived", OpenApiTypes.BOOL)],
        responses={200: JobSerializer(many=True)},
    )
    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, PULL)
        archived = choice_param(request, "archived", ["true", "false"], "false") == "true"
        jobs = Job.objects.filter(pipeline=pipeline, archived=archived)
        page = paginate(request, jobs, sort_by={"name": "name"}, default_sort="ascending")
        return Response(JobSerializer(page, many=True).data)


class PipelineEventsView(ApiView):
    scopes = {"GET": READERS}

    @extend_schema(
        parameters=[
            *PAGING_PARAMETERS,
            OpenApiParameter("status", OpenApiTypes.STR, enum=EVENT_STATUSES),
            OpenApiParameter("sha", OpenApiTypes.STR),
        ],
        responses={200: EventSerializer(many=True)},
    )
    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, PULL)
        events = Event.objects.filter(pipeline=pipeline)
        status = choice_param(request, "status", EVENT_STATUSES, None)
        if status:
            events = events.filter(status=status)
        sha = request.query_params.get("sha")
        if sha:
            events = events.filter(sha__startswith=sha.lower()[:40])
        return Response(EventSerializer(paginate(request, events), many=True).data)


def with_status_param(request: Request, builds: QuerySet[Build]) -> QuerySet[Build]:
    """The builds whose status the `status` query parameter names, or all of them."""
    status = choice_param(request, "status", BUILD_STATUSES, None)
    if status:
        builds = builds.filter(status=status)
    return builds


class PipelineBuildsView(ApiView):
    scopes = {"GET": READERS}

    @extend_schema(
        parameters=[
            *PAGING_PARAMETERS,
            OpenApiParameter("status", OpenApiTypes.STR, enum=BUILD_STATUSES),
        ],
        responses={200: BuildSerializer(many=True)},
    )
    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, PULL)
        builds = with_status_param(request, Build.objects.filter(job__pipeline=pipeline))
        page = paginate(request, builds).prefetch_related("steps")
        return Response(BuildSerializer(page, many=True, context={"with_steps": True}).data)


class PipelineLatestBuildView(ApiView):
    scopes = {"GET": READERS}

    @extend_schema(
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=BUILD_STATUSES)],
        responses={200: BuildSerializer},
    )
    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, PULL)
        builds = with_status_param(request, Build.objects.filter(job__pipeline=pipeline))
        build = builds.order_by("-id").first()
        if build is None:
            raise PipelineError(f"Pipeline {pipeline.pk} has no such build yet.", status=404)
        return Response(BuildSerializer(build, context={"with_steps": True}).data)


class PipelinePermissionsView(ApiView):
    scopes = {"GET": PEOPLE}

    @extend_schema(parameters=PAGING_PARAMETERS, responses={200: PermissionSerializer(many=True)})
    def get(self, request: Request, pipeline_id: int) -> Response:
        pipeline = pipeline_for(request, pipeline_id, PULL)
        rows = PipelinePermission.objects.filter(pipeline=pipeline).select_related("user")
        return Response(
            PermissionSerializer(paginate(request, rows, default_sort="ascending"), many=True).data
        )


class PipelinePermissionView(ApiView):
    """PUT grants a user pull, push or admin; DELETE takes their role away (admins only)."""

    scopes = {"PUT": PEOPLE, "DELETE": PEOPLE}

    def _target(self, request: Request, pipeline_id: int, username: str) -> tuple[Pipeline, User]:
        pipeline = pipeline_for(request, pipeline_id, ADMIN)
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise PipelineError(f"There is no active user {username}: check the name.", status=404)
        return pipeline, user

    @extend_schema(request=PermissionUpdateSerializer, responses={200: PermissionSerializer})
    def put(self, request: Request, pipeline_id: int, username: str) -> Response:
        pipeline, user = self._target(request, pipeline_id, username)
        body = PermissionUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        permission = grant_permission(
            pipeline=pipeline,
            user=user,
            role=body.validated_data["role"],
            granted_by=request.user.get_username(),
        )
        return Response(PermissionSerializer(permission).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pipeline_id: int, username: str) -> Response:
        pipeline, user = self._target(request, pipeline_id, username)
        revoke_permission(pipeline=pipeline, user=user)
        return Response(status=http.HTTP_204_NO_CONTENT)

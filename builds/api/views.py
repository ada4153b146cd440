"""The /v4/builds routes: what people read and what the launcher reports."""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from builds import logs
from builds import services as build_services
from builds.api.serializers import (
    BuildSerializer,
    BuildUpdateSerializer,
    LogBatchSerializer,
    StepSerializer,
    StepUpdateSerializer,
)
from builds.launch import launch_spec
from builds.models import Build, Step
from pipelines.api.errors import error_response
from pipelines.api.permissions import (
    IsUserOrBuild,
    is_build,
    require_admin,
    require_build_token,
    require_own_build,
)

# A launcher may still report teardown steps and logs this long after its build ended.
REPORT_GRACE_SECONDS = 300


def _build(request: Request, build_id: int) -> Build:
    require_own_build(request, build_id)
    return get_object_or_404(Build.objects.select_related("job__pipeline", "event"), pk=build_id)


def _reporting_build(request: Request, build_id: int) -> Build:
    """The build a launcher reports on, loaded light: these calls are the hot path of a build."""
    require_build_token(request, build_id)
    build = get_object_or_404(Build.objects.only("id", "status", "end_time"), pk=build_id)
    _refuse_if_long_finished(build)
    return build


def _refuse_if_long_finished(build: Build) -> None:
    if build.is_finished and build.end_time:
        age = (timezone.now() - build.end_time).total_seconds()
        if age > REPORT_GRACE_SECONDS:
            from rest_framework.exceptions import PermissionDenied

            raise PermissionDenied("This build has ended; its token can no longer change it.")


class BuildDetailView(APIView):
    permission_classes = [IsUserOrBuild]

    def get(self, request: Request, build_id: int) -> Response:
        build = _build(request, build_id)
        return Response(BuildSerializer(build, context={"with_steps": True}).data)

    def put(self, request: Request, build_id: int) -> Response:
        build = _build(request, build_id)
        body = BuildUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        target = body.validated_data["status"]
        if target == "ABORTED":
            if not is_build(request):
                require_admin(request, build.job.pipeline)
            build = build_services.abort_build(
                build_id=build.pk, message=f"Aborted by {request.user.get_username()}"
            )
        elif not is_build(request):
            return error_response(
                403, "Only the build's launcher reports its status; people may only abort it."
            )
        elif target == "RUNNING":
            build = build_services.mark_running(build_id=build.pk)
        else:
            build = build_services.finish_build(
                build_id=build.pk,
                status=target,
                meta=body.validated_data.get("meta"),
                message=body.validated_data["statusMessage"],
            )
        return Response(BuildSerializer(build, context={"with_steps": True}).data)


class BuildLaunchView(APIView):
    permission_classes = [IsUserOrBuild]

    def get(self, request: Request, build_id: int) -> Response:
        require_build_token(request, build_id)
        build = _build(request, build_id)
        _refuse_if_long_finished(build)
        return Response(launch_spec(build))


class BuildHeartbeatView(APIView):
    permission_classes = [IsUserOrBuild]

    def post(self, request: Request, build_id: int) -> Response:
        require_build_token(request, build_id)
        return Response({"status": build_services.renew_lease(build_id=build_id)})


class StepListView(APIView):
    permission_classes = [IsUserOrBuild]

    def get(self, request: Request, build_id: int) -> Response:
        build = _build(request, build_id)
        return Response(StepSerializer(build.steps.all(), many=True).data)


class StepDetailView(APIView):
    permission_classes = [IsUserOrBuild]

    def get(self, request: Request, build_id: int, name: str) -> Response:
        require_own_build(request, build_id)
        step = get_object_or_404(Step, build_id=build_id, name=name)
        return Response(StepSerializer(step).data)

    def put(self, request: Request, build_id: int, name: str) -> Response:
        _reporting_build(request, build_id)
        body = StepUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = {
            model_field: body.validated_data[api_field]
            for api_field, model_field in (
                ("startTime", "start_time"),
                ("endTime", "end_time"),
                ("code", "code"),
            )
            if api_field in body.validated_data
        }
        step = get_object_or_404(Step, build_id=build_id, name=name)
        if fields:
            for attr, value in fields.items():
                setattr(step, attr, value)
            step.save(update_fields=list(fields))
        return Response(StepSerializer(step).data)


class StepLogsView(APIView):
    permission_classes = [IsUserOrBuild]

    def get(self, request: Request, build_id: int, name: str) -> HttpResponseBase:
        require_own_build(request, build_id)
        step = get_object_or_404(Step.objects.select_related("build"), build_id=build_id, name=name)
        params = request.query_params
        try:
            start = int(params.get("from", 0))
            pages = int(params.get("pages", 10))
        except ValueError:
            return error_response(400, "from and pages must be integers.")
        sort = params.get("sort", "ascending")
        if sort not in {"ascending", "descending"}:
            return error_response(400, "sort must be ascending or descending.")
        if params.get("type") == "download":
            return _download(step)
        page = logs.read_page(step=step, start=start, pages=pages, sort=sort)
        more = page.more and not (
            step.build.is_finished and step.end_time is None and not page.lines
        )
        response = Response(page.lines)
        response["X-More-Data"] = "true" if more else "false"
        return response

    def post(self, request: Request, build_id: int, name: str) -> Response:
        _reporting_build(request, build_id)
        step = get_object_or_404(Step, build_id=build_id, name=name)
        body = LogBatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = logs.append_batch(
            step=step,
            seq=body.validated_data["seq"],
            first_line=body.validated_data["firstLine"],
            lines=list(body.validated_data["lines"]),
        )
        return Response(
            {"stored": created}, status=http.HTTP_201_CREATED if created else http.HTTP_200_OK
        )


def _download(step: Step) -> StreamingHttpResponse:
    def lines() -> Iterator[str]:
        start = 0
        while True:
            page = logs.read_page(step=step, start=start, pages=logs.MAX_PAGES)
            if not page.lines:
                return
            for line in page.lines:
                yield line["m"] + "\n"
            start = page.lines[-1]["n"] + 1

    response = StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")
    filename = json.dumps(f"build-{step.build_id}-{step.name}.log")
    response["Content-Disposition"] = f"attachment; filename={filename}"
    return response

"""The /v4/builds routes: what people read and what the launcher reports.

A build's token reaches only its own build. Once the build has ended it is refused except on
the routes a launcher reports teardown through (`teardown_reporting`), and on those only for
REPORT_GRACE_SECONDS after the end: after a stop the launcher still sends its teardown steps,
their logs, its heartbeat (which answers ABORTED) and a final status (which answers 409).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from builds import live, logs
from builds import services as build_services
from builds.api.serializers import (
    MAX_STEP_REPORTS,
    BuildSecretSerializer,
    BuildSerializer,
    BuildUpdateSerializer,
    LogBatchSerializer,
    LogLineSerializer,
    StepReportSerializer,
    StepSerializer,
    StepUpdateSerializer,
)
from builds.launch import launch_spec
from builds.models import Build, Step
from builds.secrets import allowed_secrets
from pipelines.api.serializers import SecretSerializer, TokenResponseSerializer
from pipelines.encryption import decrypt
from screwdriver_site.api.authentication import BuildPrincipal
from screwdriver_site.api.base import (
    MAX_LINE,
    PAGING_PARAMETERS,
    ApiView,
    build_for,
    choice_param,
    int_param,
    paginate,
)
from screwdriver_site.api.errors import error_response
from screwdriver_site.api.permissions import (
    BUILD,
    PEOPLE_AND_PIPELINES,
    PULL,
    PUSH,
    READERS,
    TEMPORAL,
    is_build,
    reporting_refusal,
    require_build_token,
)
from screwdriver_site.streaming import ChunkedResponse
from screwdriver_site.tokens import issue_build_token

REPORTERS = frozenset({BUILD})


def _reporting_build(request: Request, build_id: int) -> None:
    """Check a launcher's report: its own build, and not long after that build ended."""
    refusal = reporting_refusal(request.user, build_id)
    if refusal is not None:
        raise PermissionDenied(refusal)


def _step_fields(report: dict[str, Any]) -> dict[str, Any]:
    """The Step fields a launcher's step report sets."""
    return {
        model_field: report[api_field]
        for api_field, model_field in (
            ("startTime", "start_time"),
            ("endTime", "end_time"),
            ("code", "code"),
        )
        if api_field in report
    }


class BuildDetailView(ApiView):
    scopes = {"GET": READERS, "PUT": PEOPLE_AND_PIPELINES | REPORTERS}
    teardown_reporting = frozenset({"PUT"})

    @extend_schema(responses={200: BuildSerializer})
    def get(self, request: Request, build_id: int) -> Response:
        build = build_for(request, build_id, PULL)
        return Response(BuildSerializer(build, context={"with_steps": True}).data)

    @extend_schema(request=BuildUpdateSerializer, responses={200: BuildSerializer})
    def put(self, request: Request, build_id: int) -> Response:
        if is_build(request):
            _reporting_build(request, build_id)
        build = build_for(request, build_id, PUSH)
        body = BuildUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        target = body.validated_data["status"]
        reports = body.validated_data.get("steps")
        if reports and not is_build(request):
            return error_response(403, "Only the build's launcher reports its steps.")
        if reports:
            # Recorded whatever becomes of the status: a stopped build's final status is
            # refused (409), its teardown steps' reports are not.
            build_services.update_steps(
                build_id=build.pk,
                reports=[(report["name"], _step_fields(report)) for report in reports],
            )
        if target == "ABORTED":
            # A launcher says which signal its host stopped it with; a person's abort names
            # the person. The words are the server's: a build's own steps hold its token.
            stopped_by = body.validated_data.get("signal") if is_build(request) else None
            message = (
                f"Stopped by {stopped_by} on the machine running it: the server or the "
                "machine shut down."
                if stopped_by
                else f"Aborted by {request.user.get_username()}"
            )
            build = build_services.abort_build(build_id=build.pk, message=message)
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


class BuildLaunchView(ApiView):
    scopes = {"GET": REPORTERS, "POST": REPORTERS}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, build_id: int) -> Response:
        require_build_token(request, build_id)
        return Response(launch_spec(build_for(request, build_id, PULL)))

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, build_id: int) -> Response:
        """The launcher starts: the spec and the RUNNING transition in one round trip. The
        transition is the PUT's (409 unless QUEUED); the spec is read first, so a build
        whose spec cannot be made is not left RUNNING by it."""
        require_build_token(request, build_id)
        spec = launch_spec(build_for(request, build_id, PULL))
        build_services.mark_running(build_id=build_id)
        return Response(spec)


class BuildHeartbeatView(ApiView):
    scopes = {"POST": REPORTERS}
    teardown_reporting = frozenset({"POST"})

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, build_id: int) -> Response:
        _reporting_build(request, build_id)
        return Response({"status": build_services.renew_lease(build_id=build_id)})


class BuildCheckoutCredentialView(ApiView):
    """POST /v4/builds/{id}/checkout-credential: what the build's launcher clones with.

    Only the build's own token; only while the build runs, before its own steps started, and
    once (builds/services/credentials.py). The answer is never stored or logged.
    """

    scopes = {"POST": REPORTERS}

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, build_id: int) -> Response:
        require_build_token(request, build_id)
        try:
            answer = build_services.issue_checkout_credential(build_id=build_id)
        except build_services.CredentialRefused as exc:
            return error_response(exc.status, str(exc))
        response = Response(answer)
        response["Cache-Control"] = "no-store"
        return response


class BuildTokenView(ApiView):
    """POST /v4/builds/{id}/token: a temporal (or build) token for a build token of full life."""

    scopes = {"POST": frozenset({BUILD, TEMPORAL})}

    @extend_schema(request=None, responses={200: TokenResponseSerializer})
    def post(self, request: Request, build_id: int) -> Response:
        principal = request.user
        if not isinstance(principal, BuildPrincipal) or principal.claims.build_id != build_id:
            raise PermissionDenied("A build token can only act on its own build.")
        if principal.ended:
            raise PermissionDenied(f"Build {build_id} has ended: it gets no new token.")
        build = get_object_or_404(Build.objects.select_related("job", "event"), pk=build_id)
        return Response({"token": issue_build_token(build)})


class BuildSecretsView(ApiView):
    """The secrets a build's job lists: values for its own launcher, names for people."""

    scopes = {"GET": PEOPLE_AND_PIPELINES | REPORTERS}

    @extend_schema(responses={200: BuildSecretSerializer(many=True)})
    def get(self, request: Request, build_id: int) -> Response:
        build = build_for(request, build_id, PUSH)
        rows = allowed_secrets(build)
        if not is_build(request):
            return Response(SecretSerializer(rows, many=True).data)
        return Response(
            [{**SecretSerializer(r).data, "value": decrypt(r.encrypted_value)} for r in rows]
        )


class StepListView(ApiView):
    scopes = {"GET": READERS, "PUT": REPORTERS}
    teardown_reporting = frozenset({"PUT"})

    @extend_schema(parameters=PAGING_PARAMETERS, responses={200: StepSerializer(many=True)})
    def get(self, request: Request, build_id: int) -> Response:
        build = build_for(request, build_id, PULL)
        steps = paginate(request, Step.objects.filter(build=build), default_sort="ascending")
        return Response(StepSerializer(steps, many=True).data)

    @extend_schema(
        operation_id="builds_steps_update_many",
        request=StepReportSerializer(many=True),
        responses={200: StepSerializer(many=True)},
    )
    def put(self, request: Request, build_id: int) -> Response:
        """The launcher's reports of several steps in one request, recorded in order, each as
        `PUT /steps/{name}` records it; all or none: a name the build has no step of is a 404."""
        _reporting_build(request, build_id)
        body: serializers.ListSerializer[Any] = serializers.ListSerializer(
            child=StepReportSerializer(), data=request.data, max_length=MAX_STEP_REPORTS
        )
        body.is_valid(raise_exception=True)
        reports = [(report["name"], _step_fields(report)) for report in body.validated_data]
        named = {name for name, _fields in reports}
        known = set(
            Step.objects.filter(build_id=build_id, name__in=named).values_list("name", flat=True)
        )
        unknown = sorted(named - known)
        if unknown:
            return error_response(
                404, f"Build {build_id} has no step named {unknown[0]!r}: nothing was recorded."
            )
        steps = build_services.update_steps(build_id=build_id, reports=reports)
        return Response(StepSerializer(steps, many=True).data)


class StepDetailView(ApiView):
    scopes = {"GET": READERS, "PUT": REPORTERS}
    teardown_reporting = frozenset({"PUT"})

    @extend_schema(responses={200: StepSerializer})
    def get(self, request: Request, build_id: int, name: str) -> Response:
        build_for(request, build_id, PULL)
        step = get_object_or_404(Step, build_id=build_id, name=name)
        return Response(StepSerializer(step).data)

    @extend_schema(request=StepUpdateSerializer, responses={200: StepSerializer})
    def put(self, request: Request, build_id: int, name: str) -> Response:
        _reporting_build(request, build_id)
        body = StepUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = _step_fields(body.validated_data)
        step = get_object_or_404(Step, build_id=build_id, name=name)
        if fields:
            step = build_services.update_step(step=step, **fields)
        return Response(StepSerializer(step).data)


class StepLogsView(ApiView):
    scopes = {"GET": READERS, "POST": REPORTERS}
    teardown_reporting = frozenset({"POST"})

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.INT, description="First line number."),
            OpenApiParameter("pages", OpenApiTypes.INT, description="Pages of 100 lines."),
            OpenApiParameter("sort", OpenApiTypes.STR, enum=["ascending", "descending"]),
            OpenApiParameter("type", OpenApiTypes.STR, enum=["download", "preview"]),
        ],
        responses={200: LogLineSerializer(many=True)},
    )
    def get(self, request: Request, build_id: int, name: str) -> HttpResponseBase:
        build_for(request, build_id, PULL)
        step = get_object_or_404(Step.objects.select_related("build"), build_id=build_id, name=name)
        start = int_param(request, "from", 0, low=0, high=MAX_LINE)
        pages = int_param(request, "pages", 10, low=1, high=logs.MAX_PAGES)
        sort = choice_param(request, "sort", ["ascending", "descending"], "ascending")
        assert sort is not None
        if choice_param(request, "type", ["download", "preview"], "preview") == "download":
            return _download(step)
        page = logs.read_page(step=step, start=start, pages=pages, sort=sort)
        more = page.more and not (
            step.build.is_finished and step.end_time is None and not page.lines
        )
        response = Response(page.lines)
        response["X-More-Data"] = "true" if more else "false"
        return response

    @extend_schema(request=LogBatchSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, build_id: int, name: str) -> Response:
        _reporting_build(request, build_id)
        # With its build: masking reads the build's secrets.
        step = get_object_or_404(Step.objects.select_related("build"), build_id=build_id, name=name)
        body = LogBatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        given = body.validated_data
        created = logs.append_batch(
            step=step,
            seq=given["seq"],
            first_line=given["firstLine"],
            lines=given.get("lines"),
            count=given.get("count"),
            data=given.get("data"),
            times=given.get("times"),
        )
        # `live` tells the launcher to send lines sooner: a page watches (or may watch) them.
        return Response(
            {"stored": created, "live": live.watched(build_id)},
            status=http.HTTP_201_CREATED if created else http.HTTP_200_OK,
        )


def _download(step: Step) -> StreamingHttpResponse:
    # A batch per chunk, read as it is sent under ASGI too.
    response = ChunkedResponse(
        logs.iter_text(step), content_type="text/plain; charset=utf-8", reads_database=True
    )
    filename = json.dumps(f"build-{step.build_id}-{step.name}.log")
    response["Content-Disposition"] = f"attachment; filename={filename}"
    return response

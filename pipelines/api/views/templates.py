"""/v4/templates and /v4/validator/template: job templates that builds publish."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.api.serializers import (
    PipelineUsageSerializer,
    TemplateSerializer,
    TemplateTagSerializer,
    TemplateTagVersionSerializer,
    TemplateTrustedSerializer,
    TemplateYamlSerializer,
)
from pipelines.api.views.metrics import time_param
from pipelines.api.views.pipelines import with_admins
from pipelines.api.views.publishers import publisher_of, require_remover
from pipelines.config import ConfigError
from pipelines.config.job_template import EXACT_VERSION, TAG, VERSION, validate_template
from pipelines.models import Template
from pipelines.services import (
    PipelineError,
    Publisher,
    TemplateInvalid,
    publish_template,
    remove_template,
    remove_template_tag,
    remove_template_version,
    set_template_trusted,
    split_name,
    tag_template,
)
from pipelines.template_selectors import (
    pick_version,
    pipeline_usage,
    search_templates,
    tags_of,
    template_metrics,
    versions_of,
)
from screwdriver_site.api.base import ApiView, choice_param, paginate
from screwdriver_site.api.errors import error_response
from screwdriver_site.api.permissions import BUILD, PEOPLE, PIPELINE, USER

BUILDS = frozenset({BUILD})
# Screwdriver lets people and builds read templates; a pipeline's own token may as well.
TEMPLATE_READERS = frozenset({USER, PIPELINE, BUILD})


def _publisher(request: Request) -> Publisher:
    return publisher_of(request, "template")


def _versions(name: str) -> QuerySet[Template]:
    return versions_of(*split_name(name)).select_related("pipeline")


def _valid(serializer_class: type, request: Request) -> dict[str, object]:
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


class TemplateListView(ApiView):
    scopes = {"GET": TEMPLATE_READERS, "POST": BUILDS}

    @extend_schema(responses={200: TemplateSerializer(many=True)})
    def get(self, request: Request) -> Response:
        compact = choice_param(request, "compact", ["", "true", "false"], "") == "true"
        rows = search_templates(
            namespace=request.query_params.get("namespace") or None,
            search=request.query_params.get("search") or None,
            compact=compact,
        )
        page = paginate(request, rows, sort_by={"name": "name", "namespace": "namespace"})
        data = TemplateSerializer(page, many=True).data
        if compact:
            for row in data:
                row.pop("config", None)
        return Response(data)

    @extend_schema(request=TemplateYamlSerializer, responses={201: TemplateSerializer})
    def post(self, request: Request) -> Response:
        text = str(_valid(TemplateYamlSerializer, request)["yaml"])
        try:
            template = publish_template(publisher=_publisher(request), text=text)
        except TemplateInvalid as exc:
            response = error_response(400, exc.message)
            response.data["errors"] = exc.errors
            return response
        response = Response(TemplateSerializer(template).data, status=http.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"/v4/templates/{template.pk}")
        return response


class TemplateVersionsView(ApiView):
    scopes = {"GET": TEMPLATE_READERS, "DELETE": frozenset({USER, BUILD})}

    @extend_schema(responses={200: TemplateSerializer(many=True)})
    def get(self, request: Request, name: str) -> Response:
        rows = paginate(request, _versions(name))
        data = TemplateSerializer(rows, many=True).data
        if not data:
            return error_response(404, f"Template {name} does not exist.")
        return Response(data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str) -> Response:
        newest = _versions(name).first()
        if newest is None:
            return error_response(404, f"Template {name} does not exist.")
        _require_remover(request, newest)
        remove_template(namespace=newest.namespace, name=newest.name)
        return Response(status=http.HTTP_204_NO_CONTENT)


def _require_remover(request: Request, template: Template) -> None:
    require_remover(request, template.pipeline, template.full_name, "template")


class TemplateVersionRemoveView(ApiView):
    """DELETE /v4/templates/{name}/versions/{version}: one exact version and its tags, by
    whoever may remove the whole template."""

    scopes = {"DELETE": frozenset({USER, BUILD})}

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str, version: str) -> Response:
        if not EXACT_VERSION.test(version):
            return error_response(400, f"{version} is not an exact version such as 1.2.3.")
        template = _versions(name).filter(version=version).first()
        if template is None:
            return error_response(404, f"Template {name} with version {version} does not exist.")
        _require_remover(request, template)
        remove_template_version(template=template)
        return Response(status=http.HTTP_204_NO_CONTENT)


class TemplateByIdView(ApiView):
    """GET /v4/template/{id}: one version by its id (Screwdriver's singular path)."""

    scopes = {"GET": TEMPLATE_READERS}

    @extend_schema(responses={200: TemplateSerializer})
    def get(self, request: Request, template_id: int) -> Response:
        template = Template.objects.filter(pk=template_id).select_related("pipeline").first()
        if template is None:
            return error_response(404, f"Template {template_id} does not exist.")
        return Response(TemplateSerializer(template).data)


class TemplateDetailView(ApiView):
    scopes = {"GET": TEMPLATE_READERS}

    @extend_schema(responses={200: TemplateSerializer})
    def get(self, request: Request, name: str, version_or_tag: str) -> Response:
        found = _template_at(name, version_or_tag)
        if isinstance(found, Response):
            return found
        return Response(TemplateSerializer(found).data)


def _template_at(name: str, version_or_tag: str) -> Template | Response:
    """The template `name` at a version or tag, or the 400 or 404 that says why not."""
    if not (VERSION.test(version_or_tag) or TAG.test(version_or_tag)):
        return error_response(
            400, f"{version_or_tag} is neither a version (1, 1.2, 1.2.3) nor a tag name."
        )
    template = pick_version(*split_name(name), version_or_tag)
    if template is None:
        return error_response(404, f"Template {name}@{version_or_tag} does not exist.")
    return template


class TemplateMetricsView(ApiView):
    """GET /v4/templates/{name}/metrics: the versions, each with how many jobs, pipelines and
    builds (made between `startTime` and `endTime`) use it, as Screwdriver counts them."""

    scopes = {"GET": TEMPLATE_READERS}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, name: str) -> Response:
        for forbidden in ("search", "sortBy", "getCount"):
            if forbidden in request.query_params:
                return error_response(400, f"{forbidden} is not allowed here.")
        start, end = time_param(request, "startTime"), time_param(request, "endTime")
        rows = list(paginate(request, _versions(name)))
        if not rows:
            return error_response(404, f"Template {name} does not exist.")
        metrics = template_metrics([t.pk for t in rows], start=start, end=end)
        data = TemplateSerializer(rows, many=True).data
        for row in data:
            row["metrics"] = metrics[row["id"]]
        return Response(data)


class TemplateUsageView(ApiView):
    """GET /v4/templates/{name}/{versionOrTag}/usage/pipelines: the public pipelines whose
    jobs use that version, with when each last ran."""

    scopes = {"GET": TEMPLATE_READERS}

    @extend_schema(responses={200: PipelineUsageSerializer(many=True)})
    def get(self, request: Request, name: str, version_or_tag: str) -> Response:
        found = _template_at(name, version_or_tag)
        if isinstance(found, Response):
            return found
        pipelines = with_admins(pipeline_usage(found.pk).order_by("id"))
        return Response(PipelineUsageSerializer(pipelines, many=True).data)


class TemplateTagsView(ApiView):
    scopes = {"GET": TEMPLATE_READERS}

    @extend_schema(responses={200: TemplateTagSerializer(many=True)})
    def get(self, request: Request, name: str) -> Response:
        rows = paginate(request, tags_of(*split_name(name)))
        return Response(TemplateTagSerializer(rows, many=True).data)


class TemplateTagView(ApiView):
    scopes = {"PUT": BUILDS, "DELETE": BUILDS}

    @extend_schema(request=TemplateTagVersionSerializer, responses={200: TemplateTagSerializer})
    def put(self, request: Request, name: str, tag: str) -> Response:
        if not TAG.test(tag) or len(tag) > 30:
            return error_response(400, f"{tag} is not a tag name: start with a letter.")
        version = str(_valid(TemplateTagVersionSerializer, request)["version"])
        namespace, short = split_name(name)
        row, created = tag_template(
            publisher=_publisher(request), namespace=namespace, name=short, tag=tag, version=version
        )
        data = TemplateTagSerializer(row).data
        return Response(data, status=http.HTTP_201_CREATED if created else http.HTTP_200_OK)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, name: str, tag: str) -> Response:
        namespace, short = split_name(name)
        remove_template_tag(publisher=_publisher(request), namespace=namespace, name=short, tag=tag)
        return Response(status=http.HTTP_204_NO_CONTENT)


class TemplateTrustedView(ApiView):
    scopes = {"PUT": PEOPLE}

    @extend_schema(request=TemplateTrustedSerializer, responses={204: None})
    def put(self, request: Request, name: str) -> Response:
        if not request.user.is_superuser:
            raise exceptions.PermissionDenied("Only a server admin can mark a template trusted.")
        trusted = bool(_valid(TemplateTrustedSerializer, request)["trusted"])
        namespace, short = split_name(name)
        set_template_trusted(namespace=namespace, name=short, trusted=trusted)
        return Response(status=http.HTTP_204_NO_CONTENT)


class TemplateValidatorView(ApiView):
    scopes = {"POST": TEMPLATE_READERS}

    @extend_schema(request=TemplateYamlSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        text = str(_valid(TemplateYamlSerializer, request)["yaml"])
        try:
            result = validate_template(text)
        except ConfigError as exc:
            raise PipelineError(f"Template is not valid YAML: {exc.message}.") from None
        template = result["template"]
        config = template.get("config") if isinstance(template, dict) else None
        if not result["errors"] and isinstance(config, dict) and config.get("template"):
            # A template built on another one: that one must exist (Screwdriver merges them).
            parent = str(config["template"])
            base, _, wanted = parent.partition("@")
            if pick_version(*split_name(base), wanted or None) is None:
                result["errors"].append(
                    {
                        "message": f"Template {parent} does not exist",
                        "path": ["config", "template"],
                        "type": "any.invalid",
                    }
                )
        return Response(result)

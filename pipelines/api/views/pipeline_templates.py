"""/v4/pipeline/template(s): pipeline templates that builds publish, in Screwdriver's paths.

Screwdriver mixes the singular and the plural: reads of one template, publishing and tagging
are under ``pipeline/template``; the list, the lists of versions and tags, every removal and
the trusted mark are under ``pipeline/templates``. The singular versions, tags and removals
this server answered first stay as aliases.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.api.serializers import (
    PipelineTemplateSerializer,
    PipelineTemplateTagSerializer,
    PipelineTemplateVersionSerializer,
    TemplateTagVersionSerializer,
    TemplateTrustedSerializer,
    TemplateYamlSerializer,
)
from pipelines.api.views.publishers import publisher_of, require_remover
from pipelines.api.views.templates import BUILDS, TEMPLATE_READERS
from pipelines.config import ConfigError
from pipelines.config.job_template import EXACT_VERSION, NAME_NO_SLASH, NAMESPACE, TAG, VERSION
from pipelines.config.pipeline_template import validate_pipeline_template
from pipelines.models import PipelineTemplate
from pipelines.services import (
    PipelineError,
    Publisher,
    TemplateInvalid,
    publish_pipeline_template,
    remove_pipeline_template,
    remove_pipeline_template_tag,
    remove_pipeline_template_version,
    set_pipeline_template_trusted,
    tag_pipeline_template,
)
from pipelines.template_selectors import (
    pick_pipeline_template_version,
    search_pipeline_templates,
)
from screwdriver_site.api.base import ApiView, paginate
from screwdriver_site.api.errors import error_response
from screwdriver_site.api.permissions import BUILD, PEOPLE, USER

KIND = "pipeline template"


def _publisher(request: Request) -> Publisher:
    return publisher_of(request, KIND)


def _template(namespace: str, name: str) -> PipelineTemplate:
    """The named template; 400 for a name no template may have, 404 when there is none."""
    if not (NAMESPACE.test(namespace) and NAME_NO_SLASH.test(name)):
        raise PipelineError(
            f"{namespace}/{name} is not a template name: use letters, digits, - and _."
        )
    template = (
        PipelineTemplate.objects.select_related("pipeline")
        .filter(namespace=namespace, name=name)
        .first()
    )
    if template is None:
        raise PipelineError(f"Pipeline template {namespace}/{name} does not exist.", status=404)
    return template


def _yaml(request: Request) -> str:
    body = TemplateYamlSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    return str(body.validated_data["yaml"])


def with_metadata(template: PipelineTemplate, version: Any) -> dict[str, Any]:
    """A version with its template's name and owner, as Screwdriver's getWithMetadata."""
    meta = PipelineTemplateSerializer(template).data
    meta.pop("id")
    return {**meta, **PipelineTemplateVersionSerializer(version).data}


class PipelineTemplateCreateView(ApiView):
    scopes = {"POST": BUILDS}

    @extend_schema(
        request=TemplateYamlSerializer, responses={201: PipelineTemplateVersionSerializer}
    )
    def post(self, request: Request) -> Response:
        text = _yaml(request)
        try:
            version = publish_pipeline_template(publisher=_publisher(request), text=text)
        except TemplateInvalid as exc:
            response = error_response(400, exc.message)
            response.data["errors"] = exc.errors
            return response
        response = Response(
            PipelineTemplateVersionSerializer(version).data, status=http.HTTP_201_CREATED
        )
        response["Location"] = request.build_absolute_uri(
            f"/v4/pipeline/template/{version.template_id}"
        )
        return response


class PipelineTemplateValidateView(ApiView):
    scopes = {"POST": TEMPLATE_READERS}

    @extend_schema(request=TemplateYamlSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        try:
            result = validate_pipeline_template(_yaml(request))
        except ConfigError as exc:
            raise PipelineError(f"Template is not valid YAML: {exc.message}.") from None
        return Response(result)


class PipelineTemplateListView(ApiView):
    scopes = {"GET": TEMPLATE_READERS}

    @extend_schema(responses={200: PipelineTemplateSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rows = search_pipeline_templates(
            namespace=request.query_params.get("namespace") or None,
            search=request.query_params.get("search") or None,
        )
        page = paginate(request, rows, sort_by={"name": "name", "namespace": "namespace"})
        return Response(PipelineTemplateSerializer(page, many=True).data)


class PipelineTemplateByIdView(ApiView):
    scopes = {"GET": TEMPLATE_READERS}

    @extend_schema(responses={200: PipelineTemplateSerializer})
    def get(self, request: Request, template_id: int) -> Response:
        template = PipelineTemplate.objects.filter(pk=template_id).first()
        if template is None:
            return error_response(404, f"Pipeline template {template_id} does not exist.")
        return Response(PipelineTemplateSerializer(template).data)


def _remove(request: Request, namespace: str, name: str) -> Response:
    template = _template(namespace, name)
    require_remover(request, template.pipeline, str(template), KIND)
    remove_pipeline_template(template=template)
    return Response(status=http.HTTP_204_NO_CONTENT)


class PipelineTemplateView(ApiView):
    """GET /v4/pipeline/template/{namespace}/{name}; its DELETE is an alias of the plural."""

    scopes = {"GET": TEMPLATE_READERS, "DELETE": frozenset({USER, BUILD})}

    @extend_schema(responses={200: PipelineTemplateSerializer})
    def get(self, request: Request, namespace: str, name: str) -> Response:
        return Response(PipelineTemplateSerializer(_template(namespace, name)).data)

    @extend_schema(responses={204: None}, deprecated=True)
    def delete(self, request: Request, namespace: str, name: str) -> Response:
        return _remove(request, namespace, name)


class PipelineTemplateRemoveView(ApiView):
    """DELETE /v4/pipeline/templates/{namespace}/{name}: every version and tag."""

    scopes = {"DELETE": frozenset({USER, BUILD})}

    @extend_schema(responses={204: None})
    def delete(self, request: Request, namespace: str, name: str) -> Response:
        return _remove(request, namespace, name)


class PipelineTemplateVersionRemoveView(ApiView):
    """DELETE /v4/pipeline/templates/{namespace}/{name}/versions/{version}: one exact version
    and its tags, by whoever may remove the whole template."""

    scopes = {"DELETE": frozenset({USER, BUILD})}

    @extend_schema(responses={204: None})
    def delete(self, request: Request, namespace: str, name: str, version: str) -> Response:
        if not EXACT_VERSION.test(version):
            return error_response(400, f"{version} is not an exact version such as 1.2.3.")
        template = _template(namespace, name)
        if not template.versions.filter(version=version).exists():
            return error_response(
                404, f"Pipeline template {template} with version {version} does not exist."
            )
        require_remover(request, template.pipeline, str(template), KIND)
        remove_pipeline_template_version(template=template, version=version)
        return Response(status=http.HTTP_204_NO_CONTENT)


class PipelineTemplateVersionsView(ApiView):
    scopes = {"GET": TEMPLATE_READERS}

    @extend_schema(responses={200: PipelineTemplateVersionSerializer(many=True)})
    def get(self, request: Request, namespace: str, name: str) -> Response:
        template = _template(namespace, name)
        rows = paginate(request, template.versions.order_by("-id"))
        return Response(PipelineTemplateVersionSerializer(rows, many=True).data)


class PipelineTemplateTagsView(ApiView):
    scopes = {"GET": TEMPLATE_READERS}

    @extend_schema(responses={200: PipelineTemplateTagSerializer(many=True)})
    def get(self, request: Request, namespace: str, name: str) -> Response:
        template = _template(namespace, name)
        rows = paginate(request, template.tags.select_related("template").order_by("tag"))
        return Response(PipelineTemplateTagSerializer(rows, many=True).data)


def _remove_tag(request: Request, namespace: str, name: str, tag: str) -> Response:
    remove_pipeline_template_tag(
        publisher=_publisher(request), namespace=namespace, name=name, tag=tag
    )
    return Response(status=http.HTTP_204_NO_CONTENT)


class PipelineTemplateTagView(ApiView):
    """PUT /v4/pipeline/template/{namespace}/{name}/tags/{tag}; its DELETE is an alias."""

    scopes = {"PUT": BUILDS, "DELETE": BUILDS}

    @extend_schema(
        request=TemplateTagVersionSerializer, responses={200: PipelineTemplateTagSerializer}
    )
    def put(self, request: Request, namespace: str, name: str, tag: str) -> Response:
        if not TAG.test(tag) or len(tag) > 30:
            return error_response(400, f"{tag} is not a tag name: start with a letter.")
        body = TemplateTagVersionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        row, created = tag_pipeline_template(
            publisher=_publisher(request),
            namespace=namespace,
            name=name,
            tag=tag,
            version=str(body.validated_data["version"]),
        )
        data = PipelineTemplateTagSerializer(row).data
        return Response(data, status=http.HTTP_201_CREATED if created else http.HTTP_200_OK)

    @extend_schema(responses={204: None}, deprecated=True)
    def delete(self, request: Request, namespace: str, name: str, tag: str) -> Response:
        return _remove_tag(request, namespace, name, tag)


class PipelineTemplateTagRemoveView(ApiView):
    """DELETE /v4/pipeline/templates/{namespace}/{name}/tags/{tag}: the tag, not its version."""

    scopes = {"DELETE": BUILDS}

    @extend_schema(responses={204: None})
    def delete(self, request: Request, namespace: str, name: str, tag: str) -> Response:
        return _remove_tag(request, namespace, name, tag)


class PipelineTemplateVersionView(ApiView):
    scopes = {"GET": TEMPLATE_READERS}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, namespace: str, name: str, version_or_tag: str) -> Response:
        if not (VERSION.test(version_or_tag) or TAG.test(version_or_tag)):
            return error_response(
                400, f"{version_or_tag} is neither a version (1, 1.2, 1.2.3) nor a tag name."
            )
        template = _template(namespace, name)
        version = pick_pipeline_template_version(template, version_or_tag)
        if version is None:
            return error_response(
                404, f"Pipeline template {template}@{version_or_tag} does not exist."
            )
        return Response(with_metadata(template, version))


class PipelineTemplateTrustedView(ApiView):
    """PUT /v4/pipeline/templates/{namespace}/{name}/trusted: a server admin's mark."""

    scopes = {"PUT": PEOPLE}

    @extend_schema(request=TemplateTrustedSerializer, responses={204: None})
    def put(self, request: Request, namespace: str, name: str) -> Response:
        if not request.user.is_superuser:
            raise exceptions.PermissionDenied(
                "Only a server admin can mark a pipeline template trusted."
            )
        body = TemplateTrustedSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        template = _template(namespace, name)
        set_pipeline_template_trusted(
            namespace=template.namespace,
            name=template.name,
            trusted=bool(body.validated_data["trusted"]),
        )
        return Response(status=http.HTTP_204_NO_CONTENT)

"""GET /v4/builds/{id}/artifacts-view/{token}/{path}: a build's files, as a framed report loads
them.

The report runs in an opaque origin, so its requests carry no session: the token in the address
is the credential (builds.artifact_links). It is checked before anything is read, then the
person it was made for must still be active, still in the sign-in generation it names, and
still able to read the build's pipeline. No cookie or Authorization header counts here, for or
against. An address that ends with `/` serves that folder's `index.html`, as a static site's
server does. Types and headers are builds.artifact_responses' (`in_report`).
"""

from __future__ import annotations

from http import HTTPStatus

from django.contrib.auth import get_user_model
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.views import View

from builds.artifact_links import ViewTokenRefused, check_view_token
from builds.artifact_reads import artifacts_under
from builds.artifact_responses import ArtifactFileMissing, file_response, protect_view
from builds.artifacts import ArtifactPathError, artifact_at, check_artifact_path
from builds.models import Build
from pipelines.models import PipelinePermission
from scm.rights import refresh_scm_role
from screwdriver_site.tokens import generation_of

INDEX = "index.html"


def _refused(status: int, message: str) -> HttpResponseBase:
    answer = JsonResponse(
        {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message},
        status=status,
    )
    return protect_view(answer)


class ArtifactCapabilityView(View):
    """One artifact of a build, to whoever holds a live capability address of it."""

    http_method_names = ["get", "head"]

    def get(
        self, request: HttpRequest, build_id: int, token: str, artifact_path: str = ""
    ) -> HttpResponseBase:
        try:
            grant = check_view_token(token, build_id=build_id)
        except ViewTokenRefused as refusal:
            return _refused(403, str(refusal))
        viewer = (
            get_user_model()
            .objects.filter(pk=grant.viewer_id, is_active=True)
            .select_related("sign_in_generation")
            .first()
        )
        if viewer is None or generation_of(viewer) != grant.generation:
            return _refused(
                403, "This address ended when its viewer signed out: sign in and open it again."
            )
        build = Build.objects.select_related("job__pipeline").filter(pk=build_id).first()
        if build is None:
            return _refused(404, f"There is no build {build_id}.")
        pipeline = build.job.pipeline
        refresh_scm_role(user=viewer, pipeline=pipeline)
        if not pipeline.has_right(viewer, PipelinePermission.Role.PULL):
            return _refused(
                403, f"The viewer of this address may no longer read pipeline {pipeline.pk}."
            )
        if not artifact_path or artifact_path.endswith("/"):
            artifact_path += INDEX
        try:
            path = check_artifact_path(artifact_path)
        except ArtifactPathError as error:
            return _refused(400, f"{str(error)[:1].upper()}{str(error)[1:]}.")
        artifact = artifact_at(build, path)
        if artifact is None:
            hint = " (a folder: end its address with /)" if artifacts_under(build, path) else ""
            return _refused(404, f"Build {build.pk} has no artifact {path!r}{hint}.")
        try:
            return file_response(
                artifact,
                as_type="preview",
                headers=request.headers,
                head=request.method == "HEAD",
                in_report=True,
            )
        except ArtifactFileMissing:
            return _refused(
                404, f"The stored file of artifact {path!r} of build {build.pk} is missing."
            )

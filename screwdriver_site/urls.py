"""Top-level routes: the UI at /, the REST API at /v4, Django admin at /admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView

from pipelines.urls import auth_urlpatterns
from screwdriver_site.api import schema  # noqa: F401 - registers the OpenAPI extensions

api: list[URLPattern | URLResolver] = [
    path("swagger.json", SpectacularJSONAPIView.as_view(), name="schema"),
    # Its start-up script comes from ?script, not inline, so the page keeps our CSP.
    path(
        "documentation",
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema", template_name="api/swagger_ui.html"
        ),
        name="docs",
    ),
    path("", include("pipelines.api.urls")),
    path("", include("builds.api.urls")),
    path("", include("scm.api.urls")),
]

urlpatterns = [
    path("v4/", include((api, "api"))),
    path("admin/", admin.site.urls),
    path("", include(auth_urlpatterns)),
    # Sign-in with GitHub/GitLab (django-allauth). Its own password sign-in, sign-up, password
    # and e-mail pages, and the page that disconnects an SCM account, give way to the local
    # /login/ form: local accounts stay as admins made them, and an SCM identity stays attached.
    re_path(
        r"^accounts/(?:(?:login|signup|password|email|confirm-email|reauthenticate)/|3rdparty/$)",
        RedirectView.as_view(pattern_name="login", query_string=True),
    ),
    path("accounts/", include("allauth.urls")),
    path("", include("pipelines.urls")),
    path("", include("builds.urls")),
]

handler400 = "screwdriver_site.errors.bad_request"
handler403 = "screwdriver_site.errors.permission_denied"
handler404 = "screwdriver_site.errors.page_not_found"
handler500 = "screwdriver_site.errors.server_error"

"""UI routes of pipelines, in Screwdriver's UI URL shapes, and the sign-in routes."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, path
from django.views.generic import RedirectView

from pipelines import views

app_name = "pipelines"

urlpatterns: list[URLPattern] = [
    path("pipelines", views.pipeline_list, name="list"),
    path("pipelines/<int:pipeline_id>", views.pipeline_detail, name="detail"),
    path("pipelines/<int:pipeline_id>/start", views.pipeline_start, name="start"),
]

# Not namespaced, because settings name them plainly (LOGIN_URL = "login",
# LOGOUT_REDIRECT_URL = "login"): the root URLconf includes them on their own with
# `path("", include(auth_urlpatterns))`.
auth_urlpatterns: list[URLPattern] = [
    path("", RedirectView.as_view(pattern_name="pipelines:list"), name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]

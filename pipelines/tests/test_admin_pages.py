"""Django admin: every model has a working list, and the actions go through the services."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from builds.models import Build, BuildStatus
from pipelines.models import Event, Job
from pipelines.tests.factories import make_pipeline

pytestmark = pytest.mark.django_db


@pytest.fixture
def root_client(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("root", password="x" * 12))
    return client


def test_every_model_of_ours_is_registered_and_its_list_renders(root_client: Client) -> None:
    make_pipeline(jobs=2, events=1)
    ours = {"pipelines", "builds"}
    from django.apps import apps

    for model in apps.get_models():
        if model._meta.app_label not in ours:
            continue
        assert model in admin.site._registry, f"{model.__name__} is not in the admin"
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert root_client.get(url).status_code == 200, url


def test_admin_actions_disable_jobs_and_stop_events_through_the_services(
    root_client: Client,
) -> None:
    pipeline = make_pipeline(jobs=1, events=1)
    job = Job.objects.get(pipeline=pipeline)
    root_client.post(
        reverse("admin:pipelines_job_changelist"),
        {"action": "disable_jobs", "_selected_action": [job.pk]},
    )
    job.refresh_from_db()
    assert (job.state, job.state_changer) == ("DISABLED", "root")
    event = Event.objects.get(pipeline=pipeline)
    Build.objects.filter(event=event).update(status=BuildStatus.RUNNING)
    root_client.post(
        reverse("admin:pipelines_event_changelist"),
        {"action": "stop_events", "_selected_action": [event.pk]},
    )
    assert set(Build.objects.filter(event=event).values_list("status", flat=True)) == {"ABORTED"}

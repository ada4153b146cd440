"""`make run`'s first start: the admin account and a demo pipeline whose first event has run."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from builds.models import Build, Step
from conftest import wait_until
from pipelines.models import Event, Pipeline

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_demo_pipeline_runs_all_four_jobs_and_keeps_its_logs(stack, client) -> None:
    out = StringIO()
    call_command("sd_demo", stdout=out)
    password = (stack.data_dir / "admin-password").read_text().strip()
    assert f"admin / {password}" in out.getvalue()

    pipeline = Pipeline.objects.get(name__endswith="/demo")
    event = Event.objects.get(pipeline=pipeline)
    wait_until(
        lambda: Event.objects.get(pk=event.pk).status == Event.Status.SUCCESS,
        timeout=60,
        what="the demo's first event to succeed",
    )
    jobs = sorted(Build.objects.filter(event=event).values_list("job__name", flat=True))
    assert jobs == ["deploy", "docs", "main", "publish"]
    deploy_step = Step.objects.get(build__event=event, name="deploy")
    assert deploy_step.lines == 1

    # Running it again (every `make run` does) changes nothing.
    call_command("sd_demo", stdout=StringIO())
    assert Pipeline.objects.count() == 1 and Event.objects.count() == 1

    # Through the sign-in form, as a person does (Client.login passes no request, which the
    # failed sign-in limit needs).
    signed_in = client.post("/login/", {"username": "admin", "password": password})
    assert signed_in.status_code == 302, signed_in.content
    page = client.get(f"/pipelines/{pipeline.pk}")
    assert page.status_code == 200
    assert b"deploy" in page.content
    build = Build.objects.get(event=event, job__name="deploy")
    logs = client.get(f"/v4/builds/{build.pk}/steps/deploy/logs")
    assert logs.json()[0]["m"].startswith("deploying version 1.0.")

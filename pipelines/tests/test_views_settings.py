"""Secrets, tokens, options and user settings pages: admins only, values never shown back."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from pipelines import encryption
from pipelines.models import Event, Job, Pipeline, PipelinePermission, Secret, Token
from pipelines.services import create_secret, create_user_token
from pipelines.tests.factories import make_pipeline

pytestmark = pytest.mark.django_db


def test_an_admin_adds_updates_and_deletes_a_secret(admin_client: Client) -> None:
    pipeline = make_pipeline(events=0)
    url = reverse("pipelines:secrets", args=[pipeline.pk])
    response = admin_client.post(url, {"name": "API_KEY", "value": "s3cret-v1", "allowInPR": "on"})
    assert response.status_code == 302
    secret = Secret.objects.get()
    assert secret.allow_in_pr and encryption.decrypt(secret.encrypted_value) == "s3cret-v1"
    page = admin_client.get(url).content.decode()
    assert "API_KEY" in page and "s3cret-v1" not in page and secret.encrypted_value not in page

    update = reverse("pipelines:secret-update", args=[pipeline.pk, secret.pk])
    admin_client.post(update, {"value": ""})  # blank keeps the value, unticked clears the flag
    secret.refresh_from_db()
    assert not secret.allow_in_pr and encryption.decrypt(secret.encrypted_value) == "s3cret-v1"
    admin_client.post(update, {"value": "v2", "allowInPR": "on"})
    secret.refresh_from_db()
    assert secret.allow_in_pr and encryption.decrypt(secret.encrypted_value) == "v2"

    admin_client.post(reverse("pipelines:secret-delete", args=[pipeline.pk, secret.pk]))
    assert not Secret.objects.exists()


def test_a_bad_or_duplicate_secret_name_is_refused_with_a_reason(admin_client: Client) -> None:
    pipeline = make_pipeline(events=0)
    create_secret(pipeline=pipeline, name="TAKEN", value="x", allow_in_pr=False)
    url = reverse("pipelines:secrets", args=[pipeline.pk])
    bad = admin_client.post(url, {"name": "lower-case", "value": "x"})
    assert bad.status_code == 400 and "Use capital letters" in bad.content.decode()
    dup = admin_client.post(url, {"name": "TAKEN", "value": "x"})
    assert dup.status_code == 400 and "already exists" in dup.content.decode()


def test_pipeline_tokens_are_shown_once_then_refreshed_or_deleted(admin_client: Client) -> None:
    pipeline = make_pipeline(events=0)
    url = reverse("pipelines:tokens", args=[pipeline.pk])
    response = admin_client.post(url, {"name": "deployer", "description": "CD"})
    assert response.status_code == 201
    token = Token.objects.get(pipeline=pipeline)
    shown = response.context["new_value"]
    assert shown in response.content.decode() and Token.hash_value(shown) == token.hash
    assert shown not in admin_client.get(url).content.decode()
    refresh = reverse("pipelines:token-action", args=[pipeline.pk, token.pk, "refresh"])
    fresh = admin_client.post(refresh).context["new_value"]
    token.refresh_from_db()
    assert fresh != shown and Token.hash_value(fresh) == token.hash
    admin_client.post(reverse("pipelines:token-action", args=[pipeline.pk, token.pk, "delete"]))
    assert not Token.objects.exists()
    odd = reverse("pipelines:token-action", args=[pipeline.pk, 1, "explode"])
    assert admin_client.post(odd).status_code == 404


def test_options_disable_and_enable_a_job_with_a_reason(admin_client: Client) -> None:
    pipeline = make_pipeline(jobs=1, events=0)
    job = Job.objects.get(pipeline=pipeline)
    url = reverse("pipelines:job-state", args=[pipeline.pk, job.pk])
    admin_client.post(url, {"state": "DISABLED", "message": "flaky"})
    job.refresh_from_db()
    assert (job.state, job.state_change_message, job.state_changer) == (
        "DISABLED",
        "flaky",
        "alice",
    )
    page = admin_client.get(reverse("pipelines:options", args=[pipeline.pk])).content.decode()
    assert "flaky" in page and "Enable job0" in page
    admin_client.post(url, {"state": "ENABLED"})
    job.refresh_from_db()
    assert job.state == "ENABLED"


def test_options_sync_the_jobs_and_show_the_badge(admin_client: Client, repo: Path) -> None:
    admin_client.post(reverse("pipelines:list"), {"checkoutUrl": f"{repo}#main"})
    pipeline = Pipeline.objects.get()
    Job.objects.filter(pipeline=pipeline).update(archived=True)
    response = admin_client.post(reverse("pipelines:sync", args=[pipeline.pk]), follow=True)
    assert "Jobs synced" in response.content.decode()
    assert not Job.objects.get(pipeline=pipeline).archived
    page = admin_client.get(reverse("pipelines:options", args=[pipeline.pk])).content.decode()
    assert f"/v4/pipelines/{pipeline.pk}/badge" in page and "[![" in page


def test_deleting_a_pipeline_needs_its_name_typed_back(admin_client: Client) -> None:
    pipeline = make_pipeline(events=1)
    url = reverse("pipelines:delete", args=[pipeline.pk])
    admin_client.post(url, {"confirm": "wrong"})
    assert Pipeline.objects.exists()
    response = admin_client.post(url, {"confirm": pipeline.name})
    assert response["Location"] == reverse("pipelines:list")
    assert not Pipeline.objects.exists() and not Event.objects.exists()


def test_settings_pages_are_for_admins_only(member_client: Client) -> None:
    pipeline = make_pipeline(events=0)
    PipelinePermission.objects.create(
        pipeline=pipeline, user=User.objects.get(username="bob"), role="push"
    )
    job = Job.objects.filter(pipeline=pipeline).first()
    assert job is not None
    for name, args in (
        ("pipelines:secrets", [pipeline.pk]),
        ("pipelines:tokens", [pipeline.pk]),
        ("pipelines:options", [pipeline.pk]),
    ):
        assert member_client.get(reverse(name, args=args)).status_code == 403
    for name, args in (
        ("pipelines:secrets", [pipeline.pk]),
        ("pipelines:job-state", [pipeline.pk, job.pk]),
        ("pipelines:sync", [pipeline.pk]),
        ("pipelines:delete", [pipeline.pk]),
    ):
        response = member_client.post(
            reverse(name, args=args), {"name": "X", "value": "y", "confirm": pipeline.name}
        )
        assert response.status_code == 403
    assert Pipeline.objects.exists() and not Secret.objects.exists()
    page = member_client.get(reverse("pipelines:detail", args=[pipeline.pk])).content.decode()
    assert reverse("pipelines:secrets", args=[pipeline.pk]) not in page


def test_user_settings_create_show_once_and_delete_own_tokens_only(
    admin_client: Client, member_client: Client
) -> None:
    url = reverse("pipelines:user-settings")
    response = admin_client.post(url, {"name": "laptop"})
    assert response.status_code == 201
    value = response.context["new_value"]
    alice = User.objects.get(username="alice")
    token = Token.objects.get(user=alice)
    assert Token.hash_value(value) == token.hash
    assert value not in admin_client.get(url).content.decode()
    bobs = create_user_token(user=User.objects.get(username="bob"), name="bob's")
    other = reverse("pipelines:user-token-action", args=[bobs.token.pk, "delete"])
    assert admin_client.post(other).status_code == 404
    admin_client.post(reverse("pipelines:user-token-action", args=[token.pk, "delete"]))
    assert list(Token.objects.values_list("name", flat=True)) == ["bob's"]
    assert "bob&#x27;s" in member_client.get(url).content.decode()

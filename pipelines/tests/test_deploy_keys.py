"""Deploy keys: a pipeline that asks for one (and whose server allows it) gets an ed25519 pair;
the private half is encrypted at rest and only its admins see the public half."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from pipelines.deploy_keys import new_key_pair
from pipelines.encryption import decrypt
from pipelines.models import DeployKey, Pipeline, PipelinePermission
from pipelines.services import parse_config, sync_jobs

YAML = """
annotations:
  screwdriver.cd/useDeployKey: true
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - build: make
"""


@pytest.fixture(autouse=True)
def deploy_keys_allowed(settings: Any) -> None:
    settings.SD_DEPLOY_KEYS = True
    settings.SD_GITHUB_API_URL = "https://api.github.com"


def github_pipeline(owner: User, text: str = YAML) -> Pipeline:
    """A GitHub pipeline (made without GitHub) whose branch holds `text`, synced."""
    pipeline = Pipeline.objects.create(
        name="octo-org/app",
        scm_uri="github:github.com:octo-org/app:main",
        scm_context="github:github.com",
        checkout_url="https://github.com/octo-org/app.git#main",
        scm_repo={"branch": "main", "private": True},
        creator=owner,
    )
    PipelinePermission.objects.create(pipeline=pipeline, user=owner, role="admin")
    sync_jobs(pipeline=pipeline, config=parse_config(text))
    return pipeline


def test_a_new_key_pair_is_ed25519_in_openssh_formats(tmp_path: Path) -> None:
    pair = new_key_pair("sd-pipeline-7@cd.example")
    algorithm, blob, comment = pair.public.split()
    assert (algorithm, comment) == ("ssh-ed25519", "sd-pipeline-7@cd.example")
    private = serialization.load_ssh_private_key(pair.private.encode(), password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert public.decode() == f"{algorithm} {blob}"
    assert new_key_pair("x").public != pair.public
    if shutil.which("ssh-keygen"):
        (tmp_path / "key.pub").write_text(pair.public + "\n")
        listed = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(tmp_path / "key.pub")],
            capture_output=True,
            text=True,
            check=True,
        )
        assert listed.stdout.split()[1] == pair.fingerprint


@pytest.mark.django_db
def test_a_pipeline_that_asks_gets_a_key_whose_private_half_is_encrypted_at_rest(
    owner: User,
) -> None:
    pipeline = github_pipeline(owner)
    key = DeployKey.objects.get(pipeline=pipeline)
    stored = DeployKey.objects.values_list("encrypted_private_key", flat=True).get(pk=key.pk)
    private = decrypt(stored)
    assert "PRIVATE KEY" not in stored and private.splitlines()[1] not in stored
    loaded = serialization.load_ssh_private_key(private.encode(), password=None)
    public = loaded.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert key.public_key.startswith(public.decode() + " ")
    # Another sync keeps the same key: the one on the repository goes on working.
    sync_jobs(pipeline=pipeline, config=parse_config(YAML))
    assert DeployKey.objects.get(pipeline=pipeline).fingerprint == key.fingerprint


@pytest.mark.django_db
def test_no_key_without_the_annotation_or_without_the_operators_consent(
    owner: User, settings: Any
) -> None:
    github_pipeline(owner, YAML.replace("true", "false"))
    settings.SD_DEPLOY_KEYS = False
    Pipeline.objects.all().delete()
    github_pipeline(owner)
    assert not DeployKey.objects.exists()


def admin_api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
def test_the_admin_reads_the_public_half_and_no_one_else_reads_anything(
    owner: User, member: User, outsider: User
) -> None:
    pipeline = github_pipeline(owner)
    key = DeployKey.objects.get(pipeline=pipeline)
    url = f"/v4/pipelines/{pipeline.pk}/deploykey"
    shown = admin_api(owner).get(url)
    assert shown.status_code == 200
    body = shown.json()
    assert body["publicKey"] == key.public_key
    assert (body["fingerprint"], body["inUse"]) == (key.fingerprint, True)
    assert "PRIVATE" not in shown.content.decode()
    assert admin_api(member).get(url).status_code == 403
    assert admin_api(outsider).get(url).status_code in (401, 403)
    assert APIClient().get(url).status_code == 401
    assert admin_api(member).post(url).status_code == 403


@pytest.mark.django_db
def test_the_admin_replaces_the_pair(owner: User) -> None:
    pipeline = github_pipeline(owner)
    before = DeployKey.objects.get(pipeline=pipeline)
    replaced = admin_api(owner).post(f"/v4/pipelines/{pipeline.pk}/deploykey")
    assert replaced.status_code == 201
    after = DeployKey.objects.get(pipeline=pipeline)
    assert replaced.json()["fingerprint"] == after.fingerprint != before.fingerprint


@pytest.mark.django_db
def test_a_pipeline_without_a_key_says_how_to_get_one(owner: User, settings: Any) -> None:
    settings.SD_DEPLOY_KEYS = False
    pipeline = github_pipeline(owner)
    url = f"/v4/pipelines/{pipeline.pk}/deploykey"
    missing = admin_api(owner).get(url)
    assert missing.status_code == 404
    assert "screwdriver.cd/useDeployKey" in missing.json()["message"]
    refused = admin_api(owner).post(url)
    assert refused.status_code == 409 and "SD_DEPLOY_KEYS" in refused.json()["message"]


@pytest.mark.django_db
def test_the_secrets_page_shows_its_admin_the_public_half(owner: User) -> None:
    pipeline = github_pipeline(owner)
    key = DeployKey.objects.get(pipeline=pipeline)
    page = Client()
    page.force_login(owner)
    html = page.get(reverse("pipelines:secrets", kwargs={"pipeline_id": pipeline.pk}))
    assert html.status_code == 200
    text = html.content.decode()
    assert key.public_key in text and key.fingerprint in text
    assert "PRIVATE KEY" not in text and key.encrypted_private_key not in text

"""GET /v4/builds/{id}/artifacts-view/{token}/{path}: a report's files under a capability
address, without cookies, as their real types, and only while the token and its viewer hold."""

from __future__ import annotations

import io
import logging
import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from builds.artifact_links import VIEW_TOKEN_LIFETIME, sign_view_token
from builds.artifact_responses import FILE_POLICY, REPORT_POLICY
from builds.artifacts import store_artifact
from builds.models import Build
from pipelines.models import PipelinePermission
from pipelines.services import revoke_user_jwts
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.tokens import generation_of

pytestmark = pytest.mark.django_db

YAML = """\
jobs:
  main:
    image: node:22
    requires: [~commit]
    steps:
      - a: echo a
"""
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 32
FILES = {
    "report/index.html": b'<link rel="stylesheet" href="style.css"><script src="app.js"></script>',
    "report/style.css": b"h1 { color: rgb(1, 2, 3); }",
    "report/app.js": b"document.title = 'ran';",
    "report/img/logo.png": PNG,
    "report/data.json": b'{"passed": 12}',
    "report/icon.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    "report/font.woff2": b"wOF2",
    "report/notes.txt": b"<b>plain</b>",
    "report/sub/index.html": b"<p>sub</p>",
    "report/dist.tar.gz": b"\x1f\x8b\x08",
    # Named as a style, holding markup: it is still a style, never HTML.
    "report/evil.css": b"<script>alert(1)</script>",
    # HTML in the platform's type table (/etc/mime.types), not in ours: text.
    "report/page.shtml": b"<script>alert(1)</script>",
    "index.html": b"<p>top</p>",
}


def make_build(owner: User) -> Build:
    pipeline = pipeline_from_yaml(YAML, owner=owner, private=True)
    return Build.objects.get(event=event_from_yaml(pipeline, YAML))


@pytest.fixture
def build(owner: User) -> Build:
    """A build of alice's private pipeline that published a report with files beside it."""
    built = make_build(owner)
    for path, data in FILES.items():
        store_artifact(built, path, io.BytesIO(data))
    return built


def view_base(build: Build, user: User) -> str:
    token = sign_view_token(build_id=build.pk, viewer_id=user.pk, generation=generation_of(user))
    return reverse("api:build-artifact-view-index", args=[build.pk, token])


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def test_the_tab_frames_a_report_at_its_viewers_capability_address(
    admin_client: Client, build: Build, owner: User
) -> None:
    page = admin_client.get(
        reverse("builds:artifact", args=[build.job.pipeline_id, build.pk, "report/index.html"])
    ).content.decode()

    frame = re.search(r'<iframe[^>]* src="([^"]+)"', page)
    opened = re.search(r'id="artifact-open"', page)
    assert frame is not None and opened is not None
    assert 'sandbox="allow-scripts"' in frame[0] and 'referrerpolicy="no-referrer"' in frame[0]
    address = frame[1]
    assert re.fullmatch(rf"/v4/builds/{build.pk}/artifacts-view/[^/]+/report/index\.html", address)
    assert f'href="{address}" target="_blank" rel="noopener noreferrer"' in page
    # The address alone opens the report and its siblings: no cookie goes with it.
    stranger = Client()
    assert body_of(stranger.get(address)) == FILES["report/index.html"]
    sibling = stranger.get(address.replace("index.html", "style.css"))
    assert (sibling.status_code, body_of(sibling)) == (200, FILES["report/style.css"])


def test_the_tab_makes_no_capability_for_a_file_that_is_no_report(
    admin_client: Client, build: Build
) -> None:
    page = admin_client.get(
        reverse("builds:artifact", args=[build.job.pipeline_id, build.pk, "report/notes.txt"])
    ).content.decode()
    assert "artifacts-view" not in page


@pytest.mark.parametrize(
    ("path", "content_type", "policy"),
    [
        ("report/index.html", "text/html; charset=utf-8", REPORT_POLICY),
        ("report/style.css", "text/css; charset=utf-8", FILE_POLICY),
        ("report/app.js", "text/javascript; charset=utf-8", FILE_POLICY),
        ("report/img/logo.png", "image/png", FILE_POLICY),
        ("report/data.json", "application/json", FILE_POLICY),
        ("report/icon.svg", "image/svg+xml", FILE_POLICY),
        ("report/font.woff2", "font/woff2", FILE_POLICY),
        ("report/notes.txt", "text/plain; charset=utf-8", FILE_POLICY),
        ("report/evil.css", "text/css; charset=utf-8", FILE_POLICY),
    ],
)
def test_a_file_is_served_inline_as_its_real_type_under_a_sandbox_of_its_own(
    client: Client, build: Build, owner: User, path: str, content_type: str, policy: str
) -> None:
    response = client.get(view_base(build, owner) + path)

    assert response.status_code == 200
    assert body_of(response) == FILES[path]
    assert response["Content-Type"] == content_type
    assert response["Content-Security-Policy"] == policy
    assert response["Content-Disposition"].startswith("inline")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["Cache-Control"] == "no-store"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response
    assert not response.cookies


def test_only_an_html_name_of_ours_is_ever_served_as_html(
    client: Client, build: Build, owner: User
) -> None:
    # `.shtml` is HTML in many platforms' type tables (/etc/mime.types): text or a download here.
    response = client.get(view_base(build, owner) + "report/page.shtml")

    assert response["Content-Type"] in ("text/plain; charset=utf-8", "application/octet-stream")
    assert response["Content-Security-Policy"] == FILE_POLICY


def test_a_file_of_no_known_type_is_only_offered_for_download(
    client: Client, build: Build, owner: User
) -> None:
    response = client.get(view_base(build, owner) + "report/dist.tar.gz")

    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Content-Security-Policy"] == FILE_POLICY


def test_an_address_ending_with_a_slash_serves_the_folders_index(
    client: Client, build: Build, owner: User
) -> None:
    base = view_base(build, owner)

    assert body_of(client.get(base)) == FILES["index.html"]
    assert body_of(client.get(base + "report/sub/")) == FILES["report/sub/index.html"]
    folder = client.get(base + "report/sub")
    assert folder.status_code == 404
    assert folder.json()["message"] == (
        f"Build {build.pk} has no artifact 'report/sub' (a folder: end its address with /)."
    )
    assert client.get(base + "report/img/").status_code == 404


def test_head_answers_the_headers_and_a_range_its_bytes(
    client: Client, build: Build, owner: User
) -> None:
    address = view_base(build, owner) + "report/style.css"

    head = client.head(address)
    ranged = client.get(address, headers={"Range": "bytes=0-1"})

    assert (head.status_code, head["Content-Length"], head["Content-Type"]) == (
        200,
        str(len(FILES["report/style.css"])),
        "text/css; charset=utf-8",
    )
    assert (ranged.status_code, body_of(ranged)) == (206, b"h1")


def test_a_path_that_leaves_the_folder_or_is_missing_is_refused(
    client: Client, build: Build, owner: User
) -> None:
    base = view_base(build, owner)

    missing = client.get(base + "report/nope.css")
    assert missing.status_code == 404
    assert missing.json()["message"] == f"Build {build.pk} has no artifact 'report/nope.css'."
    assert missing["Referrer-Policy"] == "no-referrer"
    leaving = client.get(base + "report/../../x")
    assert leaving.status_code == 400
    assert "may not leave the artifacts folder" in leaving.json()["message"]


def test_a_bad_token_is_refused_before_the_database_is_read(
    client: Client, build: Build, owner: User, django_assert_num_queries: Any
) -> None:
    token = view_base(build, owner).split("/")[-2]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    address = reverse("api:build-artifact-view", args=[build.pk, forged, "report/style.css"])

    with django_assert_num_queries(0):
        response = client.get(address)

    assert response.status_code == 403
    assert response.json()["message"] == (
        f"This address of build {build.pk}'s artifacts is not valid: open the report from the "
        "build page again."
    )
    assert response["Content-Security-Policy"] == FILE_POLICY
    assert response["Cache-Control"] == "no-store"


def test_a_token_of_another_build_opens_nothing_of_this_one(
    client: Client, build: Build, owner: User
) -> None:
    other = Build.objects.get(event=event_from_yaml(build.job.pipeline, YAML))
    store_artifact(other, "report/style.css", io.BytesIO(b"other"))
    token = view_base(other, owner).split("/")[-2]

    response = client.get(
        reverse("api:build-artifact-view", args=[build.pk, token, "report/style.css"])
    )

    assert response.status_code == 403
    assert response.json()["message"] == (
        f"This address was made for the artifacts of another build, not build {build.pk}."
    )


def test_an_expired_token_is_refused(client: Client, build: Build, owner: User) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        address = view_base(build, owner) + "report/style.css"
        assert client.get(address).status_code == 200
        clock.shift(VIEW_TOKEN_LIFETIME + timedelta(seconds=1))
        response = client.get(address)

    assert response.status_code == 403
    assert "has expired" in response.json()["message"]


def test_an_outsiders_token_opens_nothing_of_a_private_pipeline(
    client: Client, build: Build, member: User, outsider: User
) -> None:
    # bob has no role on alice's private pipeline; carol's account is disabled.
    refused = client.get(view_base(build, member) + "report/style.css")
    disabled = client.get(view_base(build, outsider) + "report/style.css")

    assert refused.status_code == 403
    assert refused.json()["message"] == (
        f"The viewer of this address may no longer read pipeline {build.job.pipeline_id}."
    )
    assert disabled.status_code == 403
    assert b"rgb(1, 2, 3)" not in refused.content + disabled.content


def test_a_viewer_who_loses_their_role_or_signs_out_loses_the_address(
    client: Client, build: Build, owner: User, member: User
) -> None:
    PipelinePermission.objects.create(pipeline=build.job.pipeline, user=member, role="pull")
    address = view_base(build, member) + "report/style.css"
    assert client.get(address).status_code == 200

    PipelinePermission.objects.filter(user=member).delete()
    assert client.get(address).status_code == 403

    kept = view_base(build, owner) + "report/style.css"
    revoke_user_jwts(user=owner)
    signed_out = client.get(kept)
    assert signed_out.status_code == 403
    assert signed_out.json()["message"] == (
        "This address ended when its viewer signed out: sign in and open it again."
    )


def test_the_callers_own_session_counts_for_nothing_here(
    admin_client: Client, build: Build
) -> None:
    address = reverse("api:build-artifact-view", args=[build.pk, "x", "report/style.css"])
    assert admin_client.get(address).status_code == 403


def test_the_job_permalink_previews_a_report_at_a_capability_address(
    admin_client: Client, build: Build
) -> None:
    job = f"/pipelines/{build.job.pipeline_id}/jobs/main/artifacts"
    Build.objects.filter(pk=build.pk).update(status="SUCCESS")

    report = admin_client.get(f"{job}/report/index.html?type=preview")
    text = admin_client.get(f"{job}/report/notes.txt?type=preview")

    assert re.fullmatch(
        rf"/v4/builds/{build.pk}/artifacts-view/[^/]+/report/index\.html", report["Location"]
    )
    assert body_of(Client().get(report["Location"])) == FILES["report/index.html"]
    assert text["Location"] == (
        reverse("api:build-artifact", args=[build.pk, "report/notes.txt"]) + "?type=preview"
    )


def test_no_log_line_holds_the_capability(
    client: Client, build: Build, owner: User, caplog: pytest.LogCaptureFixture
) -> None:
    base = view_base(build, owner)
    token = base.split("/")[-2]

    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(base + "report/missing.css").status_code == 404

    assert "/artifacts-view/[redacted]/report/missing.css" in caplog.text
    assert token not in caplog.text

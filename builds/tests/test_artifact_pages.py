"""The build page's Artifacts tab and the job permalinks: what is shown, what is only offered
for download, escaping, rights, and a build of thousands of files in one query."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.template.defaultfilters import filesizeformat
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from builds.artifact_reads import Row, tree_rows
from builds.artifacts import path_key, store_artifact
from builds.models import Artifact, Build, BuildStatus
from builds.templatetags.artifact_tree import artifact_tree, size_text
from pipelines.tests.factories import ESCAPED, XSS, event_from_yaml, pipeline_from_yaml

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


@pytest.fixture
def build(owner: User) -> Build:
    """A build of alice's private pipeline."""
    pipeline = pipeline_from_yaml(YAML, owner=owner, private=True)
    return Build.objects.get(event=event_from_yaml(pipeline, YAML))


def store(build: Build, path: str, data: bytes) -> Artifact:
    return store_artifact(build, path, io.BytesIO(data))


def tab(build: Build, path: str = "") -> str:
    if path:
        return reverse("builds:artifact", args=[build.job.pipeline_id, build.pk, path])
    return reverse("builds:artifacts", args=[build.job.pipeline_id, build.pk])


def api(build: Build, path: str) -> str:
    return reverse("api:build-artifact", args=[build.pk, path])


def page_of(client: Client, address: str, status: int = 200) -> str:
    response = client.get(address)
    assert response.status_code == status, response.content[:500]
    return response.content.decode()


def view_of(page: str) -> str:
    """The part of the page that shows the chosen file."""
    found = re.search(r'<section class="card artifact-view".*?</section>', page, flags=re.S)
    assert found, page
    return found[0]


def test_the_tab_shows_folders_and_files_with_sizes_and_a_zip_of_all(
    admin_client: Client, build: Build
) -> None:
    store(build, "reports/index.html", b"<h1>r</h1>")
    store(build, "reports/css/site.css", b"x" * 2048)
    store(build, "build.log", b"done\n")

    page = page_of(admin_client, tab(build))

    assert '<span class="tree-name">reports/</span>' in page
    assert '<span class="tree-name">css/</span>' in page
    assert f'href="{tab(build, "build.log")}">build.log</a>' in page
    assert "2.0\xa0KB" in page  # the css file, human readable
    assert f'href="{reverse("api:build-artifacts", args=[build.pk])}" id="download-all"' in page
    assert "3 files" in page
    assert f'href="{api(build, "reports")}?dir=true&amp;type=download"' in page
    assert 'Artifacts <span class="muted">(3)</span>' in page
    # Folders before files, as a file browser lists them.
    assert page.index("reports/</span>") < page.index(">build.log</a>")


def test_the_steps_tab_counts_the_artifacts(admin_client: Client, build: Build) -> None:
    store(build, "a.txt", b"a")
    page = page_of(admin_client, reverse("builds:detail", args=[build.job.pipeline_id, build.pk]))
    link = f'href="{tab(build)}" id="artifacts-tab">Artifacts <span class="muted">(1)</span>'
    assert link in page


def test_a_text_file_shows_its_head_in_place_with_a_link_to_the_whole(
    admin_client: Client, build: Build
) -> None:
    text = "line of the log: é\n" * 10_000  # about 200 KB, more than is shown
    store(build, "out/build.log", text.encode())

    view = view_of(page_of(admin_client, tab(build, "out/build.log")))

    shown = re.search(r'<pre class="artifact-text"[^>]*>(.*?)</pre>', view, flags=re.S)
    assert shown is not None
    assert 60_000 < len(shown[1].encode()) <= 64 * 1024
    assert text.startswith(shown[1])  # cut at a line's character, not inside one
    assert 'id="artifact-truncated"' in view
    assert f'href="{api(build, "out/build.log")}?type=preview"' in view
    assert f'href="{api(build, "out/build.log")}?type=download"' in view


def test_an_image_is_shown_and_a_report_runs_in_a_sandboxed_frame(
    admin_client: Client, build: Build
) -> None:
    store(build, "shots/home.png", PNG)
    store(build, "report/index.html", b"<script>parent.x=1</script>")

    image = view_of(page_of(admin_client, tab(build, "shots/home.png")))
    report = view_of(page_of(admin_client, tab(build, "report/index.html")))

    assert f'id="artifact-image" src="{api(build, "shots/home.png")}?type=preview"' in image
    frame = re.search(r"<iframe[^>]*>", report)
    assert frame is not None
    assert 'sandbox="allow-scripts"' in frame[0]
    # At the viewer's capability address, under which the files beside it load too.
    src = re.search(r'src="([^"]+)"', frame[0])
    assert src is not None
    assert re.fullmatch(rf"/v4/builds/{build.pk}/artifacts-view/[^/]+/report/index\.html", src[1])
    assert "parent.x" not in report


BINARIES = {
    "dist/app.tar.gz": b"\x1f\x8b\x08" + bytes(range(256)),
    "logo.svg": b"<svg onload='alert(1)'/>",
    "core.log": b"looks like a log\0\1\2 but is not",
}


def test_a_binary_is_offered_for_download_and_never_loaded(
    admin_client: Client, build: Build
) -> None:
    for path, data in BINARIES.items():
        store(build, path, data)

        view = view_of(page_of(admin_client, tab(build, path)))

        assert 'id="artifact-binary"' in view, path
        assert f'href="{api(build, path)}?type=download"' in view
        assert "?type=preview" not in view
        assert "<pre" not in view and "<img" not in view and "<iframe" not in view
        assert "alert" not in view and "looks like" not in view


def test_a_large_image_or_report_is_not_loaded_into_the_page(
    admin_client: Client, build: Build
) -> None:
    store(build, "huge.png", PNG)
    Artifact.objects.filter(build=build).update(size=50 * 1024 * 1024)

    view = view_of(page_of(admin_client, tab(build, "huge.png")))

    assert 'id="artifact-too-large"' in view and "<img" not in view


def test_paths_and_contents_are_escaped(admin_client: Client, build: Build) -> None:
    store(build, f"{XSS}/{XSS}.txt", f"</pre>{XSS}".encode())

    page = page_of(admin_client, tab(build, f"{XSS}/{XSS}.txt"))

    assert XSS not in page
    assert ESCAPED in page
    assert f"&lt;/pre&gt;{ESCAPED}" in page
    # In a link the path is quoted: nothing of it can end the attribute.
    assert "/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E/" in page


def test_a_folder_shows_its_size_and_zip(admin_client: Client, build: Build) -> None:
    store(build, "reports/a.txt", b"aa")
    store(build, "reports/deep/b.txt", b"bbb")

    view = view_of(page_of(admin_client, tab(build, "reports")))

    assert "2 files, 5\xa0bytes" in view
    assert f'href="{api(build, "reports")}?dir=true&amp;type=download"' in view


def test_a_path_the_build_lacks_is_a_404_that_still_shows_the_tree(
    admin_client: Client, build: Build
) -> None:
    store(build, "a.txt", b"a")

    page = page_of(admin_client, tab(build, "b.txt"), status=404)

    assert "There is no artifact <code>b.txt</code>" in page
    assert f'href="{tab(build, "a.txt")}">a.txt</a>' in page


def test_a_build_without_artifacts_says_where_they_come_from(
    admin_client: Client, build: Build
) -> None:
    page = page_of(admin_client, tab(build))
    assert 'id="no-artifacts"' in page and "$SD_ARTIFACTS_DIR" in page
    assert "download-all" not in page


def test_the_tab_of_a_private_pipeline_is_for_its_people_only(
    build: Build, owner: User, member: User, outsider: User
) -> None:
    store(build, "secret.txt", b"the contents")
    for persona, user, status in [
        ("owner", owner, 200),
        ("member", member, 404),
        ("outsider", outsider, 302),
        ("anonymous", None, 302),
    ]:
        client = Client()
        if user is not None:
            client.force_login(user)

        listing, file = client.get(tab(build)), client.get(tab(build, "secret.txt"))

        assert (listing.status_code, file.status_code) == (status, status), persona
        assert (b"secret.txt" in listing.content) == (persona == "owner")
        assert (b"the contents" in file.content) == (persona == "owner")
        if status == 302:
            assert file["Location"].startswith(reverse("login"))


def test_thousands_of_files_cost_the_queries_of_ten(admin_client: Client, build: Build) -> None:
    def publish(count: int) -> None:
        Artifact.objects.filter(build=build).delete()
        Artifact.objects.bulk_create(
            Artifact(
                build=build,
                path=f"dir{i % 40}/sub{i % 7}/file-{i}.txt",
                path_key=path_key(f"dir{i % 40}/sub{i % 7}/file-{i}.txt"),
                size=i,
                sha256="0" * 64,
                content_type="text/plain",
            )
            for i in range(count)
        )

    def queries(count: int) -> tuple[int, str]:
        publish(count)
        with CaptureQueriesContext(connection) as captured:
            page = page_of(admin_client, tab(build))
        return len(captured), page

    queries(10)  # the first request of a session reads more than later ones
    few, _ = queries(10)
    many, page = queries(2000)

    assert many == few
    assert page.count('class="tree-file') == 2000
    assert page.count('class="tree-folder') == 40 + 40 * 7
    # Too many files to open every folder: they start closed.
    assert "<details open>" not in page


# --- the job permalinks ----------------------------------------------------------------------


@pytest.fixture
def history(build: Build) -> tuple[Build, Build]:
    """The job's SUCCESS build with report v1, then a later FAILURE build with report v2."""
    store(build, "report.txt", b"v1")
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.SUCCESS)
    later = Build.objects.get(event=event_from_yaml(build.job.pipeline, YAML))
    store(later, "report.txt", b"v2")
    Build.objects.filter(pk=later.pk).update(status=BuildStatus.FAILURE)
    return build, later


def job_link(build: Build, tail: str) -> str:
    return f"/pipelines/{build.job.pipeline_id}/jobs/main/{tail}"


def test_an_artifact_permalink_goes_to_the_latest_successful_build(
    admin_client: Client, history: tuple[Build, Build]
) -> None:
    good, bad = history

    response = admin_client.get(job_link(good, "artifacts/report.txt"))
    failed = admin_client.get(job_link(good, "artifacts/report.txt?status=failure"))
    all_files = admin_client.get(job_link(good, "artifacts"))

    assert (response.status_code, response["Location"]) == (302, tab(good, "report.txt"))
    assert failed["Location"] == tab(bad, "report.txt")
    assert all_files["Location"] == tab(good)
    shown = admin_client.get(job_link(good, "artifacts/report.txt"), follow=True)
    assert "v1" in view_of(shown.content.decode())


def test_an_artifact_permalink_with_a_type_answers_the_file_itself(
    admin_client: Client, history: tuple[Build, Build]
) -> None:
    good, _bad = history

    response: Any = admin_client.get(
        job_link(good, "artifacts/report.txt?type=download"), follow=True
    )

    assert response.redirect_chain[0][0] == f"{api(good, 'report.txt')}?type=download"
    assert b"".join(response.streaming_content) == b"v1"


def test_the_latest_permalink_goes_to_the_latest_build_of_any_or_one_status(
    admin_client: Client, history: tuple[Build, Build]
) -> None:
    good, bad = history
    detail = "builds:detail"

    latest = admin_client.get(job_link(good, "latest"))
    success = admin_client.get(job_link(good, "latest?status=SUCCESS"))
    screwdrivers = admin_client.get(f"/pipelines/{good.job.pipeline_id}/jobs/main?status=SUCCESS")

    assert latest["Location"] == reverse(detail, args=[bad.job.pipeline_id, bad.pk])
    assert success["Location"] == reverse(detail, args=[good.job.pipeline_id, good.pk])
    assert screwdrivers["Location"] == success["Location"]


def test_a_permalink_without_such_a_build_says_so(admin_client: Client, build: Build) -> None:
    no_success = page_of(admin_client, job_link(build, "artifacts/report.txt"), status=404)
    bad_status = page_of(admin_client, job_link(build, "latest?status=GREEN"), status=400)
    no_job = admin_client.get(f"/pipelines/{build.job.pipeline_id}/jobs/nope/latest")

    assert "Job main has no SUCCESS build yet." in no_success
    assert "no build status &#x27;GREEN&#x27;" in bad_status
    assert no_job.status_code == 404


def test_permalinks_of_a_private_pipeline_are_for_its_people_only(
    member_client: Client, client: Client, history: tuple[Build, Build]
) -> None:
    good, _bad = history
    for tail in ("latest", "artifacts/report.txt", "artifacts/report.txt?type=download"):
        assert member_client.get(job_link(good, tail)).status_code == 404
        assert client.get(job_link(good, tail))["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("size", [0, 1, 980, 1024, 2047, 10**6, 5 * 2**30, 3 * 2**50, 2**62])
def test_the_tree_writes_sizes_as_the_rest_of_the_page_does(size: int) -> None:
    assert size_text(size) == filesizeformat(size)


def test_the_tree_nests_folders_before_files_and_closes_each_folder_after_its_last_line() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        Row(path, size, "text/plain", "0" * 64, moment)
        for path, size in [("a", 1), ("a/b/c.txt", 2), ("a/d.txt", 3), ("e.txt", 4)]
    ]

    tree = tree_rows(rows, selected="a/b/c.txt")

    assert [(r.path, r.depth, r.is_folder, r.size, len(r.closes)) for r in tree] == [
        ("a", 0, True, 5, 0),
        ("a/b", 1, True, 2, 0),
        ("a/b/c.txt", 2, False, 2, 1),  # ends b/
        ("a/d.txt", 1, False, 3, 1),  # ends a/
        ("a", 0, False, 1, 0),  # a file may share a folder's name
        ("e.txt", 0, False, 4, 0),
    ]
    assert [r.path for r in tree if r.selected] == ["a/b/c.txt"]
    html = artifact_tree(tree, "/p/", "/v4/")
    assert html.count("<ul>") == html.count("</ul>") == 2
    assert html.count("<li") == html.count("</li>") == 6

"""In Chromium: the Artifacts tab of a build page shows its tree, a text file and an image,
never loads a binary, and runs an HTML report where its script can neither read the viewer's
cookies nor call the API as the viewer. A report that a real build of a private pipeline
published with its style, module script and image beside it loads them all through its
capability address (builds.artifact_links), and still learns nothing of the viewer. What one
real build publishes (text, a scripted report, an image, a 50 MB binary, nested folders) shows
the same way from the folder storage and from an S3-compatible server, and the job's permalinks
lead to it.

The report's script tries both and writes what it got into its own page; the test reads that
through the frame. A control run strips the sandbox (the frame's attribute and the answer's
Content-Security-Policy, in the browser) and shows the same script then gets both: so the
probe would see a missing sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from builds.artifacts import artifacts_of, store_artifact
from builds.models import Build, BuildStatus
from builds.tests.step_logs import step_log
from conftest import OWNER_PASSWORD, database_url, wait_until
from pipelines.models import Pipeline
from pipelines.services import Creator, create_pipeline, start_event
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from tools.live_stack import LiveStack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CSP_VIOLATION = ("Content Security Policy", "Content-Security-Policy", "Refused to")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium)",
    ),
    pytest.mark.xdist_group("browser"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")

YAML = """\
jobs:
  main:
    image: node:22
    requires: [~commit]
    steps:
      - a: echo a
"""
REPORT = """\
<!doctype html>
<html><body>
<h1>Test report</h1>
<p id="cookie">pending</p>
<p id="api">pending</p>
<script>
  function show(id, text) { document.getElementById(id).textContent = text; }
  try { show("cookie", "cookie:" + document.cookie); }
  catch (error) { show("cookie", "threw:" + error.name); }
  fetch("/v4/builds/BUILD_ID", { credentials: "include" })
    .then(function (answer) {
      return answer.text().then(function (text) {
        show("api", "status:" + answer.status + " " + text);
      });
    })
    .catch(function (error) { show("api", "failed:" + error.name); });
</script>
</body></html>
"""


def png(width: int, height: int) -> bytes:
    """A real PNG of that size, grey."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def fast_password_hasher() -> None:
    """The server is another process with the default hasher: it must be able to check ours."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live(transactional_db: None, tmp_path: Path, outputs_folder: Path) -> Iterator[LiveStack]:
    """The ASGI server on the test database, reading the artifacts this process stores."""
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        extra_env={"SD_STORAGE_URL": f"file://{outputs_folder}"},
        worker=False,
    )
    yield stack
    stack.stop()


@pytest.fixture
def page(browser: Any, live: LiveStack) -> Iterator[Any]:
    """A browser tab; what our own pages' Content-Security-Policy refused fails the test."""
    context = browser.new_context(base_url=live.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    refused: list[str] = []

    def on_console(message: Any) -> None:
        if any(sign in message.text for sign in CSP_VIOLATION):
            refused.append(f"{tab.url}: {message.text}")

    tab.on("console", on_console)
    yield tab
    context.close()
    assert not refused, "the Content-Security-Policy blocked part of a page:\n" + "\n".join(refused)


@pytest.fixture
def build(owner: User) -> Build:
    """A finished build of alice's private pipeline, with a text file, an image, a binary
    and an HTML report among its artifacts."""
    pipeline = pipeline_from_yaml(YAML, owner=owner, private=True)
    build = Build.objects.get(event=event_from_yaml(pipeline, YAML))
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.SUCCESS)
    files = {
        "logs/build.log": b"compiled 12 modules\n<b>not bold</b>\n",
        "shots/home.png": png(40, 30),
        "dist/app.bin": bytes(range(256)) * 64,
        "report/index.html": REPORT.replace("BUILD_ID", str(build.pk)).encode(),
    }
    for path, data in files.items():
        store_artifact(build, path, io.BytesIO(data))
    return build


def sign_in(page: Any) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(OWNER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/pipelines$"))


def tab_url(build: Build, path: str = "") -> str:
    return f"/pipelines/{build.job.pipeline_id}/builds/{build.pk}/artifacts" + (
        f"/{path}" if path else ""
    )


def shown_image_size(page: Any) -> list[int]:
    """The natural size of the image the artifact view shows, once it has loaded."""
    image = page.locator("#artifact-image")
    image.wait_for()
    # Our pages refuse eval, so wait_for_function's string cannot run in them: poll from here.
    return wait_until(
        lambda: image.evaluate("img => img.complete && [img.naturalWidth, img.naturalHeight]"),
        timeout=10,
        what="the image to load",
    )


def test_the_tab_shows_the_tree_a_text_and_an_image_and_never_loads_a_binary(
    page: Any, live: LiveStack, build: Build
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page)

    page.goto(f"/pipelines/{build.job.pipeline_id}/builds/{build.pk}")
    page.get_by_role("link", name="Artifacts (4)").click()
    page.wait_for_url(re.compile(r"/artifacts$"))
    tree = page.get_by_role("navigation", name=f"Files of build #{build.pk}")
    for name in ("logs/", "shots/", "dist/", "report/", "build.log", "home.png", "app.bin"):
        assert tree.get_by_text(name, exact=True).is_visible(), name

    tree.get_by_role("link", name="build.log").click()
    page.wait_for_url(re.compile(r"/artifacts/logs/build\.log$"))
    text = page.locator("#artifact-text")
    assert text.inner_text() == "compiled 12 modules\n<b>not bold</b>\n"
    assert page.locator("#artifact-text b").count() == 0

    page.get_by_role("link", name="home.png").click()
    assert shown_image_size(page) == [40, 30]

    page.get_by_role("link", name="app.bin").click()
    page.wait_for_url(re.compile(r"/artifacts/dist/app\.bin$"))
    assert page.locator("#artifact-binary").is_visible()
    view = page.locator("#artifact-view")
    assert view.locator("img, iframe, pre, object, embed").count() == 0
    download = page.locator("#artifact-download")
    assert (
        download.get_attribute("href")
        == f"/v4/builds/{build.pk}/artifacts/dist/app.bin?type=download"
    )
    assert not [address for address in requested if "app.bin" in address and "/v4/" in address]

    page.get_by_role("link", name="Download all as zip").wait_for()


# --- the HTML report ---------------------------------------------------------------------


def report_says(frame: Any) -> tuple[str, str]:
    """What the report's script found: its cookie probe and its API probe."""
    playwright_sync.expect(frame.locator("#api")).not_to_have_text("pending")
    return (
        frame.locator("#cookie").inner_text(),
        frame.locator("#api").inner_text(),
    )


def strip_sandbox(page: Any, *, attribute: bool) -> None:
    """Take the report's sandbox away in the browser: its policy header, and maybe the frame's
    sandbox attribute. Only the control run and the one-layer run do this."""

    def without_policy(route: Any) -> None:
        answer = route.fetch()
        headers = {
            name: value
            for name, value in answer.headers.items()
            if name.lower() != "content-security-policy"
        }
        route.fulfill(response=answer, headers=headers)

    # The API's preview and the capability address the build page frames.
    page.route(
        re.compile(r".*/v4/builds/\d+/artifacts(-view/[^/]+)?/report/index\.html.*"),
        without_policy,
    )
    if not attribute:
        return

    def without_attribute(route: Any) -> None:
        answer = route.fetch()
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        body = answer.text().replace(' sandbox="allow-scripts"', "")
        route.fulfill(response=answer, headers=headers, body=body)

    page.route(
        re.compile(r".*/pipelines/\d+/builds/\d+/artifacts/report/index\.html$"), without_attribute
    )


def assert_learned_nothing(found: tuple[str, str], build: Build) -> None:
    cookie, api = found
    # In an opaque origin reading document.cookie throws; nothing of the viewer's shows.
    assert cookie == "threw:SecurityError", cookie
    assert "csrftoken" not in cookie and "sessionid" not in cookie
    # The API is another origin to the report: no cookie goes, and the answer is not readable.
    assert api.startswith(("failed:", "status:401", "status:403")), api
    assert f'"id":{build.pk}' not in api.replace(" ", "")


def test_a_report_runs_but_learns_nothing_of_the_viewer(
    page: Any, live: LiveStack, build: Build
) -> None:
    sign_in(page)

    # In the build page's frame, as served: sandboxed twice (attribute and header).
    page.goto(tab_url(build, "report/index.html"))
    frame = page.frame_locator("#artifact-frame")
    frame.locator("h1", has_text="Test report").wait_for()
    assert_learned_nothing(report_says(page.frames[1]), build)
    capability = page.locator("#artifact-frame").get_attribute("src")
    assert capability is not None and "/artifacts-view/" in capability

    # Opened on its own in a tab: the answer's header alone sandboxes it.
    page.goto(f"/v4/builds/{build.pk}/artifacts/report/index.html?type=preview")
    assert_learned_nothing(report_says(page.main_frame), build)
    # So does it at its capability address, where the viewer's cookies go along.
    page.goto(capability)
    assert_learned_nothing(report_says(page.main_frame), build)


def test_either_sandbox_alone_keeps_the_report_away_from_the_viewer(
    page: Any, live: LiveStack, build: Build
) -> None:
    sign_in(page)
    strip_sandbox(page, attribute=False)

    page.goto(tab_url(build, "report/index.html"))
    page.frame_locator("#artifact-frame").locator("h1").wait_for()
    assert_learned_nothing(report_says(page.frames[1]), build)


def test_without_its_sandbox_the_same_report_would_read_the_cookie_and_call_the_api(
    page: Any, live: LiveStack, build: Build
) -> None:
    # The control: it shows the probe sees what a missing sandbox would expose.
    sign_in(page)
    strip_sandbox(page, attribute=True)

    page.goto(tab_url(build, "report/index.html"))
    assert page.locator("#artifact-frame").get_attribute("sandbox") is None
    page.frame_locator("#artifact-frame").locator("h1").wait_for()
    cookie, api = report_says(page.frames[1])

    assert "csrftoken=" in cookie
    assert api.startswith("status:200")
    assert f'"id":{build.pk}' in api.replace(" ", "")


# --- a report of several files, published by a real build -------------------------------

REPORT_YAML = """\
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - publish: |
          mkdir -p "$SD_ARTIFACTS_DIR/report/img"
          cp report/index.html report/style.css "$SD_ARTIFACTS_DIR/report/"
          sed "s/BUILD_ID/$SD_BUILD_ID/" report/app.js > "$SD_ARTIFACTS_DIR/report/app.js"
          base64 -d report/logo.b64 > "$SD_ARTIFACTS_DIR/report/img/logo.png"
"""
SPLIT_REPORT = """\
<!doctype html>
<html><head>
<link rel="stylesheet" href="style.css">
<script type="module" src="app.js"></script>
</head><body>
<h1>Split report</h1>
<img id="logo" src="img/logo.png" alt="logo">
<p id="script">pending</p>
<p id="cookie">pending</p>
<p id="api">pending</p>
</body></html>
"""
SPLIT_STYLE = "h1 { color: rgb(1, 2, 3); }\n"
# A module script: from the report's opaque origin it loads only with CORS.
SPLIT_SCRIPT = """\
function show(id, text) { document.getElementById(id).textContent = text; }
const logo = document.getElementById("logo");
const sized = () => show("script", "ran:" + logo.naturalWidth + "x" + logo.naturalHeight);
if (logo.complete) { sized(); } else { logo.addEventListener("load", sized); }
try { show("cookie", "cookie:" + document.cookie); }
catch (error) { show("cookie", "threw:" + error.name); }
fetch("/v4/builds/BUILD_ID", { credentials: "include" })
  .then((answer) => answer.text().then((text) => {
    show("api", "status:" + answer.status + " " + text);
  }))
  .catch((error) => show("api", "failed:" + error.name));
"""


@pytest.fixture
def live_builds(
    request: pytest.FixtureRequest,
    transactional_db: None,
    tmp_path: Path,
    outputs_folder: Path,
    settings: Any,
) -> Iterator[LiveStack]:
    """The ASGI server and a worker that runs builds, storing where this test reads: the
    test's folder, or (with the parameter "s3") a bucket on an S3-compatible server."""
    storage = {"SD_STORAGE_URL": f"file://{outputs_folder}"}
    if getattr(request, "param", "folder") == "s3":
        storage = {
            "SD_STORAGE_URL": request.getfixturevalue("s3_outputs"),
            "SD_STORAGE_ACCESS_KEY": "testing",
            "SD_STORAGE_SECRET_KEY": "testing",
        }
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        extra_env={**storage, "SD_LOCAL_REPO_ROOTS": ",".join(settings.SD_LOCAL_REPO_ROOTS)},
    )
    settings.SD_API_URL = stack.url
    settings.SD_UI_URL = stack.url
    yield stack
    stack.stop()


def _finished(pipeline: Pipeline) -> Build | None:
    build = Build.objects.filter(job__pipeline=pipeline).order_by("-id").first()
    return build if build is not None and build.is_finished else None


def test_a_private_report_loads_the_files_beside_it_and_still_learns_nothing(
    browser: Any, live_builds: LiveStack, make_repo: Any, owner: User
) -> None:
    repo = make_repo(
        {
            "screwdriver.yaml": REPORT_YAML,
            "report/index.html": SPLIT_REPORT,
            "report/style.css": SPLIT_STYLE,
            "report/app.js": SPLIT_SCRIPT,
            "report/logo.b64": base64.b64encode(png(24, 16)).decode() + "\n",
        },
        "split-report",
    )
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    Pipeline.objects.filter(pk=pipeline.pk).update(settings={"public": False})
    pipeline.refresh_from_db()
    assert not pipeline.is_public
    start_event(pipeline=pipeline, start_from="~commit", creator=Creator("alice", "alice"))
    build = wait_until(lambda: _finished(pipeline), timeout=180, what="the build to finish")
    assert build.status == BuildStatus.SUCCESS, step_log(build, "publish")
    assert sorted(artifact.path for artifact in artifacts_of(build)) == [
        "environment.json",
        "manifest.txt",
        "report/app.js",
        "report/img/logo.png",
        "report/index.html",
        "report/style.css",
        "steps.json",
    ]

    context = browser.new_context(base_url=live_builds.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    loads: list[Any] = []
    page.on(
        "request",
        lambda request: loads.append(request) if "/artifacts-view/" in request.url else None,
    )
    try:
        sign_in(page)
        page.goto(tab_url(build, "report/index.html"))
        frame_element = page.locator("#artifact-frame")
        assert frame_element.get_attribute("sandbox") == "allow-scripts"
        frame = page.frame_locator("#artifact-frame")
        frame.locator("h1", has_text="Split report").wait_for()

        # The style applied, the module script ran, and it saw the image load.
        playwright_sync.expect(frame.locator("#script")).to_have_text("ran:24x16")
        color = frame.locator("h1").evaluate("h1 => getComputedStyle(h1).color")
        assert color == "rgb(1, 2, 3)"
        # And still: no cookie of the viewer's, no API as the viewer.
        assert_learned_nothing(report_says(page.frames[1]), build)

        siblings = {
            request.url.rsplit("/artifacts-view/", 1)[1].split("/", 1)[1] for request in loads
        }
        assert {"report/style.css", "report/app.js", "report/img/logo.png"} <= siblings
        for request in loads:
            headers = request.all_headers()
            # The report's own requests carry no session (the frame's navigation, made by our
            # page, may: that route takes none), and the capability leaves in no Referer.
            if not request.is_navigation_request():
                assert "cookie" not in headers, request.url
            assert "artifacts-view" not in headers.get("referer", ""), request.url
    finally:
        context.close()


# --- what one real build published, from the folder and from S3 -------------------------

BIG_BYTES = 52_428_800
EVERYTHING_YAML = f"""\
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - publish: |
          cd "$SD_ARTIFACTS_DIR"
          echo "compiled 12 modules" > notes.txt
          mkdir -p report shots dist nested/deeper
          sed "s/BUILD_ID/$SD_BUILD_ID/" "$SD_SOURCE_DIR/report.html" > report/index.html
          base64 -d "$SD_SOURCE_DIR/home.b64" > shots/home.png
          head -c {BIG_BYTES} /dev/urandom > dist/app.bin
          meta set app.sha256 "$(sha256sum dist/app.bin | cut -c1-64)"
          echo deep > nested/deeper/file.txt
"""


@pytest.mark.slow
@pytest.mark.parametrize("live_builds", ["folder", "s3"], indirect=True)
def test_what_a_build_published_shows_in_chromium_and_through_its_permalink(
    browser: Any, live_builds: LiveStack, make_repo: Any, owner: User
) -> None:
    repo = make_repo(
        {
            "screwdriver.yaml": EVERYTHING_YAML,
            "report.html": REPORT,
            "home.b64": base64.b64encode(png(40, 30)).decode() + "\n",
        },
        "everything",
    )
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    start_event(pipeline=pipeline, start_from="~commit", creator=Creator("alice", "alice"))
    build = wait_until(lambda: _finished(pipeline), timeout=180, what="the build to finish")
    assert build.status == BuildStatus.SUCCESS, step_log(build, "sd-teardown-artifacts")
    assert sorted(a.path for a in artifacts_of(build)) == [
        "dist/app.bin",
        "environment.json",
        "manifest.txt",
        "nested/deeper/file.txt",
        "notes.txt",
        "report/index.html",
        "shots/home.png",
        "steps.json",
    ]

    context = browser.new_context(base_url=live_builds.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        sign_in(page)
        page.goto(f"/pipelines/{pipeline.pk}/builds/{build.pk}")
        page.get_by_role("link", name="Artifacts (8)").click()
        page.wait_for_url(re.compile(r"/artifacts$"))
        tree = page.get_by_role("navigation", name=f"Files of build #{build.pk}")
        for name in ("dist/", "nested/", "deeper/", "report/", "shots/", "app.bin", "file.txt"):
            assert tree.get_by_text(name, exact=True).is_visible(), name

        tree.get_by_role("link", name="notes.txt").click()
        playwright_sync.expect(page.locator("#artifact-text")).to_have_text("compiled 12 modules\n")
        tree.get_by_role("link", name="home.png").click()
        assert shown_image_size(page) == [40, 30]

        # The 50 MB binary is offered for download, never rendered, and its bytes never asked.
        tree.get_by_role("link", name="app.bin").click()
        page.wait_for_url(re.compile(r"/artifacts/dist/app\.bin$"))
        assert page.locator("#artifact-binary").is_visible()
        assert (
            page.locator("#artifact-view").locator("img, iframe, pre, object, embed").count() == 0
        )
        assert not [url for url in requested if "app.bin" in url and "/v4/" in url]
        href = page.locator("#artifact-download").get_attribute("href")
        assert href == f"/v4/builds/{build.pk}/artifacts/dist/app.bin?type=download"
        download = page.request.get(href)
        assert download.ok and download.headers["content-length"] == str(BIG_BYTES)
        assert hashlib.sha256(download.body()).hexdigest() == build.meta["app"]["sha256"]

        # The job's permalink opens the report of its latest successful build; the report's
        # script runs and learns nothing of the viewer.
        page.goto(f"/pipelines/{pipeline.pk}/jobs/main/artifacts/report/index.html?status=SUCCESS")
        page.wait_for_url(re.compile(rf"/builds/{build.pk}/artifacts/report/index\.html$"))
        assert page.locator("#artifact-frame").get_attribute("sandbox") == "allow-scripts"
        page.frame_locator("#artifact-frame").locator("h1", has_text="Test report").wait_for()
        assert_learned_nothing(report_says(page.frames[1]), build)

        page.goto(f"/pipelines/{pipeline.pk}/jobs/main/latest")
        page.wait_for_url(re.compile(rf"/pipelines/{pipeline.pk}/builds/{build.pk}$"))
    finally:
        context.close()

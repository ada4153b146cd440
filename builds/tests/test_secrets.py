"""The server masks a build's secrets itself, in logs and meta, and caps and orders logs.

Everything goes through the API with the build's own token, as a launcher (or a step that
took the token) would send it; what people then read comes from the API and the build page.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import string
import zlib
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from builds.models import Build, BuildStatus, LogBatch, Step
from builds.secrets import allowed_secrets
from executors.tests.secret_forms import base64_cores
from pipelines.models import Event, Job, Pipeline, PipelinePermission
from pipelines.services import set_secret
from screwdriver_site.tokens import issue_build_token

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("SD_FUZZ_EXAMPLES", "25"))
T0 = 1_000_000_000_000
_names = itertools.count()

ALPHABETS = {
    "letters": string.ascii_letters,
    "digits": string.digits,
    "punctuation": string.punctuation + " ",
    "non-ascii": "éüßçø€日本語😀ñ",
}


def make_build(*, secrets: dict[str, str], listed: list[str] | None = None) -> Build:
    """A RUNNING build of a job that lists `listed` (default: every one of `secrets`)."""
    n = next(_names)
    pipeline = Pipeline.objects.create(
        name=f"local/app{n}",
        scm_uri=f"local:/app{n}:main",
        checkout_url=f"/srv/app{n}.git#main",
        scm_repo={"branch": "main", "private": False},
    )
    owner, _ = User.objects.get_or_create(username="alice")
    PipelinePermission.objects.create(pipeline=pipeline, user=owner, role="admin")
    names = list(secrets) if listed is None else listed
    job = Job.objects.create(
        pipeline=pipeline,
        name="main",
        permutations=[{"image": "alpine", "steps": [{"use": "true"}], "secrets": names}],
    )
    event = Event.objects.create(
        pipeline=pipeline,
        sha="a" * 40,
        start_from="~commit",
        workflow_graph={
            "nodes": [{"name": "~commit"}, {"name": "main"}],
            "edges": [{"src": "~commit", "dest": "main"}],
        },
        status=Event.Status.IN_PROGRESS,
    )
    build = Build.objects.create(
        job=job, event=event, number=1, sha=event.sha, status=BuildStatus.RUNNING
    )
    Step.objects.create(build=build, position=0, name="sd-setup-scm")
    Step.objects.create(build=build, position=1, name="use")
    Step.objects.create(build=build, position=2, name="other")
    for name, value in secrets.items():
        set_secret(pipeline=pipeline, name=name, value=value)
    return build


def launcher(build: Build) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_build_token(build)}")
    return client


def person() -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.get(username="alice"))
    return client


def post(client: APIClient, build: Build, step: str, seq: int, first: int, texts: list[str]):
    body = {
        "seq": seq,
        "firstLine": first,
        "lines": [{"t": T0, "m": text} for text in texts],
    }
    return client.post(f"/v4/builds/{build.pk}/steps/{step}/logs", body, format="json")


def everything_shown(build: Build) -> str:
    """Every API answer and page where a build's logs and meta show, as one text."""
    people = person()
    parts = [
        people.get(f"/v4/builds/{build.pk}/steps/{step}/logs", {"pages": 100}).content.decode()
        for step in ("sd-setup-scm", "use", "other")
    ]
    parts.append(people.get(f"/v4/builds/{build.pk}").content.decode())
    parts.append(people.get(f"/v4/jobs/{build.job_id}/lastSuccessfulMeta").content.decode())
    parts.append(people.get(f"/v4/events/{build.event_id}").content.decode())
    page = Client()
    page.force_login(User.objects.get(username="alice"))
    url = reverse("builds:detail", args=[build.job.pipeline_id, build.pk])
    html = page.get(url)
    assert html.status_code == 200
    parts.append(html.content.decode())
    return "\n".join(parts)


# --- what the masking must hide, derived independently of the masker ------------------------


def printed(secret: str) -> dict[str, str]:
    raw = secret.encode()
    out = {
        "literal": secret,
        "quote": quote(secret, safe=""),
        "quote_plus": quote_plus(secret),
        "json": json.dumps(secret)[1:-1],
        "json-utf8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "base64": base64.b64encode(raw).decode(),
        "base64-url": base64.urlsafe_b64encode(raw).decode(),
    }
    for offset in (1, 2):
        out[f"base64-at-{offset}"] = base64.b64encode(b"\x07" * offset + raw).decode()
    return out


def needles(secret: str) -> set[str]:
    found = {v for k, v in printed(secret).items() if not k.startswith("base64")}
    # The JSON answers escape what they show: the escaped value must not be there either.
    found.add(json.dumps(secret)[1:-1])
    return {n for n in found | base64_cores(secret) if n}


secrets_strategy = st.sampled_from(sorted(ALPHABETS)).flatmap(
    lambda name: st.text(ALPHABETS[name], min_size=8, max_size=24).filter(
        # Four different characters at least, so that no timestamp or id shows it by chance.
        lambda s: len(s.encode()) >= 8 and len(set(s)) >= 4 and s.strip("*")
    )
)


# A fuzz test: it runs in `make test`, not in the quick unit part.
@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(secret=secrets_strategy, data=st.data())
def test_a_build_token_posting_logs_and_meta_itself_shows_no_secret_in_any_form(
    secret: str, data: st.DataObject
) -> None:
    build = make_build(secrets={"TOKEN": secret})
    client = launcher(build)
    forms = printed(secret)
    # Whole, and cut at every position over two lines of one batch.
    lines = [f"show {form} here" for form in forms.values()]
    for form in forms.values():
        for cut in range(1, len(form)):
            lines += [f"a {form[:cut]}", f"{form[cut:]} b"]
    seq = first = 0
    for start in range(0, len(lines), 1000):
        chunk = lines[start : start + 1000]
        assert post(client, build, "use", seq, first, chunk).status_code == 201
        seq, first = seq + 1, first + len(chunk)
    # Cut over two batches, at positions the fuzzer picks, in the setup step's log too.
    form = forms[data.draw(st.sampled_from(sorted(forms)))]
    cuts = data.draw(st.lists(st.integers(1, len(form) - 1), min_size=1, max_size=4))
    for other, cut in enumerate(cuts):
        for step, number, text in (("use", seq, f"a {form[:cut]}"), ("use", seq + 1, form[cut:])):
            assert post(client, build, step, number, first, [text]).status_code == 201
            first += 1
        seq += 2
        assert post(client, build, "sd-setup-scm", other, other, [form]).status_code == 201
    meta = {
        "leaked": secret,
        "forms": list(forms.values()),
        secret: {"nested": f"x{secret}y"},
    }
    done = client.put(f"/v4/builds/{build.pk}", {"status": "SUCCESS", "meta": meta}, format="json")
    assert done.status_code == 200, done.content

    shown = everything_shown(build)
    found = [n for n in needles(secret) if n in shown]
    assert not found, found
    build.refresh_from_db()
    assert build.meta["leaked"] == "****"


def test_only_the_secrets_the_build_may_see_are_masked() -> None:
    build = make_build(
        secrets={"LISTED": "listed-value-1", "UNLISTED": "unlisted-value-2"}, listed=["LISTED"]
    )
    assert [s.name for s in allowed_secrets(build)] == ["LISTED"]
    assert post(launcher(build), build, "use", 0, 0, ["listed-value-1 unlisted-value-2"])
    page = person().get(f"/v4/builds/{build.pk}/steps/use/logs").json()
    assert [line["m"] for line in page] == ["**** unlisted-value-2"]


def test_a_pull_request_build_masks_only_the_secrets_it_is_given() -> None:
    build = make_build(secrets={"KEY": "pr-hidden-value"})
    Event.objects.filter(pk=build.event_id).update(type="pr", pr_num=3)
    build = Build.objects.select_related("job", "event").get(pk=build.pk)
    assert list(allowed_secrets(build)) == []
    set_secret(pipeline=build.job.pipeline, name="KEY", value="pr-shown-value", allow_in_pr=True)
    assert [s.name for s in allowed_secrets(build)] == ["KEY"]


# --- order and caps -------------------------------------------------------------------------


def test_a_batch_out_of_order_is_refused_with_a_409_saying_what_comes_next() -> None:
    build = make_build(secrets={})
    client = launcher(build)
    assert post(client, build, "use", 0, 0, ["a", "b"]).status_code == 201

    gap = post(client, build, "use", 5, 2, ["x"])
    assert gap.status_code == 409
    assert "expects batch 1 starting at line 2" in gap.json()["message"]
    assert post(client, build, "use", 1, 7, ["x"]).status_code == 409
    resend = post(client, build, "use", 0, 0, ["a", "b"])
    assert resend.status_code == 200 and resend.json()["stored"] is False
    assert post(client, build, "use", 1, 2, ["c"]).status_code == 201


def test_an_ended_step_takes_no_new_lines_from_a_build_token() -> None:
    build = make_build(secrets={})
    client = launcher(build)
    ended = client.put(
        f"/v4/builds/{build.pk}/steps/sd-setup-scm",
        {"endTime": "2024-05-01T10:00:05Z", "code": 0},
        format="json",
    )
    assert ended.status_code == 200
    late = post(client, build, "sd-setup-scm", 0, 0, ["forged checkout line"])
    assert late.status_code == 409
    assert not LogBatch.objects.filter(step__build=build).exists()


def _texts(build: Build, step: str) -> list[str]:
    page = person().get(f"/v4/builds/{build.pk}/steps/{step}/logs", {"pages": 100}).json()
    return [line["m"] for line in page]


def test_past_the_step_cap_the_batch_is_cut_with_one_line_and_later_ones_store_nothing(
    settings: Any,
) -> None:
    settings.SD_LOG_MAX_STEP_BYTES = 20
    build = make_build(secrets={})
    client = launcher(build)
    cut = post(client, build, "use", 0, 0, ["0123456789", "0123456789", "more"])
    assert cut.status_code == 201
    later = post(client, build, "use", 1, 3, ["still more"])
    assert later.status_code == 200 and later.json()["stored"] is False
    resent = post(client, build, "use", 0, 0, ["0123456789", "0123456789", "more"])
    assert resent.status_code == 200

    assert _texts(build, "use") == [
        "0123456789",
        "[log truncated: this step wrote more than 20 bytes]",
    ]
    step = Step.objects.get(build=build, name="use")
    assert step.lines == 2 and step.log_truncated


def test_past_the_build_cap_each_step_gets_one_truncation_line(settings: Any) -> None:
    settings.SD_LOG_MAX_BUILD_BYTES = 30
    build = make_build(secrets={})
    client = launcher(build)
    assert post(client, build, "use", 0, 0, ["a" * 15, "b" * 15]).status_code == 201
    assert post(client, build, "other", 0, 0, ["c" * 10]).status_code == 201
    assert post(client, build, "other", 1, 1, ["d"]).status_code == 200

    note = "[log truncated: this build wrote more than 30 bytes]"
    assert _texts(build, "use") == ["a" * 15, note]
    assert _texts(build, "other") == [note]


def test_three_large_batches_with_made_up_seqs_cannot_flood_a_step(settings: Any) -> None:
    settings.SD_LOG_MAX_STEP_BYTES = 1024 * 1024
    build = make_build(secrets={"TOKEN": "flood-secret-value"})
    client = launcher(build)
    line = "flood-secret-value " + "x" * 2000
    answers = [
        post(client, build, "sd-setup-scm", seq, seq * 1000, [line] * 1000).status_code
        for seq in (0, 7, 3)
    ]
    # The first batch reached the cap: the step's log is closed, the others store nothing.
    assert answers == [201, 200, 200]
    step = Step.objects.get(build=build, name="sd-setup-scm")
    # Masked, a line is "**** " and the x's: as many as fit, then the truncation line.
    fit = (1024 * 1024) // len("**** " + "x" * 2000 + "\n")
    assert step.lines == fit + 1 and step.log_truncated
    assert step.log_bytes <= 1024 * 1024 + 100
    assert "flood-secret-value" not in json.dumps(_texts(build, "sd-setup-scm"))


def test_a_packed_batch_is_masked_too_and_a_malformed_one_gets_a_400() -> None:
    build = make_build(secrets={"TOKEN": "packed-secret-value"})
    client = launcher(build)
    raw = b"\n".join([b"before", b"the packed-secret-value here", b"cut packed-sec", b"after"])
    body = {
        "seq": 0,
        "firstLine": 0,
        "count": 4,
        "data": base64.b64encode(zlib.compress(raw)).decode(),
        "times": [[T0, 4]],
    }
    url = f"/v4/builds/{build.pk}/steps/use/logs"
    stored = client.post(url, body, format="json")
    # No page watches the build: the launcher may take its time.
    assert (stored.status_code, stored.json()) == (201, {"stored": True, "live": False})
    assert _texts(build, "use") == ["before", "the **** here", "cut ****", "after"]

    for bad in ({"data": 7}, {"times": "soon"}, {"count": 5}):
        answer = client.post(url, {**body, "seq": 1, "firstLine": 4, **bad}, format="json")
        assert answer.status_code == 400, answer.content
        assert answer.json()["message"]

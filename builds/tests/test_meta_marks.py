"""What a build's meta marks: the event's `label` and the build's `build.warning`."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from builds.models import Build, BuildStatus
from pipelines.models import Event
from pipelines.tests.factories import ESCAPED, XSS, make_pipeline

pytestmark = pytest.mark.django_db


def _build(meta: dict[str, Any]) -> Build:
    return Build(meta=meta, status=BuildStatus.SUCCESS)


@pytest.mark.parametrize(
    ("warning", "messages"),
    [
        (None, None),
        (False, None),
        ("false", None),
        (True, []),
        ("true", []),
        ("tests were skipped", ["tests were skipped"]),
        ({"message": "one", "anotherMessage": "two"}, ["one", "two"]),
    ],
)
def test_build_warning_meta_reads_as_screwdriver_shows_it(
    warning: object, messages: list[str] | None
) -> None:
    meta = {} if warning is None else {"build": {"buildId": "1", "warning": warning}}
    assert _build(meta).warnings == messages


@pytest.mark.parametrize(
    ("label", "shown"),
    [(None, ""), ("VERSION_3.0", "VERSION_3.0"), (3, "3"), (True, "true"), ({"a": 1}, "")],
)
def test_an_events_label_is_its_meta_label(label: object, shown: str) -> None:
    meta = {} if label is None else {"label": label}
    assert Event(meta=meta).label == shown


def test_the_pages_show_the_label_and_the_warnings_escaped(admin_client: Client) -> None:
    pipeline = make_pipeline(jobs=1, events=1)
    build = Build.objects.get(job__pipeline=pipeline)
    Event.objects.filter(pk=build.event_id).update(meta={"label": XSS})
    Build.objects.filter(pk=build.pk).update(
        status=BuildStatus.SUCCESS, meta={"build": {"warning": {"message": XSS}}}
    )

    page = admin_client.get(reverse("builds:detail", args=[pipeline.pk, build.pk]))
    html = page.content.decode()
    assert 'id="build-warning"' in html and 'id="build-warnings"' in html
    assert ESCAPED in html and XSS not in html

    events = admin_client.get(reverse("pipelines:event", args=[pipeline.pk, build.event_id]))
    html = events.content.decode()
    assert 'id="event-label"' in html and ESCAPED in html and XSS not in html
    # The events table shows it too, read from the meta it does not load.
    assert html.count('class="badge event-label"') == 2


def test_a_build_without_a_warning_shows_none(admin_client: Client) -> None:
    pipeline = make_pipeline(jobs=1, events=1)
    build = Build.objects.get(job__pipeline=pipeline)

    html = admin_client.get(reverse("builds:detail", args=[pipeline.pk, build.pk])).content
    assert b'id="build-warning"' not in html

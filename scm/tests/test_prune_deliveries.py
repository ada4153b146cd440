"""Old webhook deliveries are deleted: by the daily task and by `sd_prune_deliveries`."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from scm.models import WebhookDelivery
from scm.retention import prune_deliveries, retention_cutoff
from screwdriver_site.schedules import ensure_periodic_tasks

pytestmark = pytest.mark.django_db


def delivery(name: str, *, age_days: float) -> WebhookDelivery:
    row = WebhookDelivery.objects.create(scm="github", delivery_id=name, event_name="push")
    received = timezone.now() - timedelta(days=age_days)
    WebhookDelivery.objects.filter(pk=row.pk).update(received_at=received)
    return row


def kept() -> list[str]:
    return sorted(WebhookDelivery.objects.values_list("delivery_id", flat=True))


def test_the_command_deletes_deliveries_older_than_the_retention_and_says_how_many(
    settings: Any,
) -> None:
    settings.SD_WEBHOOK_RETENTION_DAYS = 30
    delivery("old-1", age_days=31)
    delivery("old-2", age_days=400)
    delivery("recent", age_days=29)
    out = StringIO()
    call_command("sd_prune_deliveries", stdout=out)
    assert kept() == ["recent"]
    assert "Deleted 2 webhook deliveries received before" in out.getvalue()
    assert "(older than 30 days)" in out.getvalue()


def test_the_command_takes_another_period_and_reports_progress_per_batch(settings: Any) -> None:
    settings.SD_WEBHOOK_RETENTION_DAYS = 30
    delivery("week-old", age_days=8)
    delivery("today", age_days=0)
    out = StringIO()
    call_command("sd_prune_deliveries", "--days", "7", "--verbosity", "2", stdout=out)
    assert kept() == ["today"]
    assert "... 1 deleted so far" in out.getvalue()


def test_the_command_refuses_a_negative_period() -> None:
    with pytest.raises(CommandError, match="--days must be 0 or more"):
        call_command("sd_prune_deliveries", "--days", "-1", stdout=StringIO())


def test_the_daily_schedule_runs_the_task_that_honours_the_setting(settings: Any) -> None:
    settings.SD_WEBHOOK_RETENTION_DAYS = 3
    Schedule.objects.filter(name="sd-prune-deliveries").delete()
    ensure_periodic_tasks()
    ensure_periodic_tasks()  # every worker start runs it; one schedule stays
    schedule = Schedule.objects.get(name="sd-prune-deliveries")
    assert schedule.schedule_type == Schedule.DAILY and schedule.repeats == -1
    delivery("four-days", age_days=4)
    delivery("two-days", age_days=2)
    assert import_string(schedule.func)() == 1
    assert kept() == ["two-days"]


def test_many_old_deliveries_are_deleted_in_batches_without_touching_recent_ones() -> None:
    for i in range(5):
        delivery(f"old-{i}", age_days=60)
    delivery("new", age_days=1)
    seen: list[int] = []
    deleted = prune_deliveries(before=retention_cutoff(days=30), batch_size=2, progress=seen.append)
    assert deleted == 5
    assert seen == [2, 4, 5]
    assert kept() == ["new"]

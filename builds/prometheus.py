"""`GET /metrics`: the server's state in Prometheus's text format.

Build counts, the queue, build durations and the outbox are read from the database at scrape
time (`DatabaseCollector`), so every server process answers the same and nothing is lost when
a process restarts. The task queue's depth is asked of django-q2's broker (`QueueCollector`),
the database's table or Redis's list alike. Live log connections are held by one process each:
every process writes its count to the database (`builds.live_count`) and the sum is read here.

Who may read it: with `SD_METRICS_TOKEN` set, a request that sends it as
`Authorization: Bearer <token>`; without it, only a signed-in superuser (the page names
pipelines nowhere, but queue depth and build counts are still the operator's business).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_q.brokers import get_broker
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from builds.live_count import live_connections
from builds.models import Build, BuildStatus, OutboxMessage

logger = logging.getLogger(__name__)

# Upper bounds of the duration buckets, in seconds: from a quick check to a long release.
DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
# Statuses whose builds ran: they have a start and an end.
LIVE_HELP = "Build pages following a build live over WebSocket, in every server process."
RAN = (BuildStatus.SUCCESS, BuildStatus.FAILURE, BuildStatus.UNSTABLE, BuildStatus.ABORTED)


def _seconds_since(moment: datetime | None, now: datetime) -> float:
    return max((now - moment).total_seconds(), 0.0) if moment else 0.0


def _duration_seconds(value: timedelta | float | None) -> float:
    # PostgreSQL answers an interval; SQLite and MySQL answer microseconds on some versions.
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) / 1_000_000


class DatabaseCollector(Collector):
    """Gauges and histograms computed from the database when Prometheus scrapes."""

    def describe(self) -> Iterator[Metric]:
        # Known names without a database read at registration.
        yield GaugeMetricFamily("sd_builds", "Builds by status.", labels=["status"])
        yield GaugeMetricFamily("sd_build_queue_depth", "Queued builds no worker has started.")
        yield GaugeMetricFamily("sd_build_queue_oldest_wait_seconds", "Oldest queued wait.")
        yield HistogramMetricFamily(
            "sd_build_duration_seconds", "Run time of builds that ran.", labels=["status"]
        )
        yield GaugeMetricFamily("sd_outbox_backlog", "Outbox rows not yet done.")
        yield GaugeMetricFamily("sd_outbox_oldest_seconds", "Age of the oldest row not done.")
        yield GaugeMetricFamily("sd_live_log_connections", LIVE_HELP)

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield self._builds_by_status()
        yield from self._queue(now)
        yield self._durations()
        yield from self._outbox(now)
        yield GaugeMetricFamily("sd_live_log_connections", LIVE_HELP, value=live_connections(now))

    def _builds_by_status(self) -> Metric:
        counts = dict(
            Build.objects.order_by()
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        family = GaugeMetricFamily("sd_builds", "Builds by status.", labels=["status"])
        for status in BuildStatus.values:
            family.add_metric([status], counts.get(status, 0))
        return family

    def _queue(self, now: datetime) -> Iterator[Metric]:
        waiting = Build.objects.filter(status=BuildStatus.QUEUED, dispatched_at__isnull=True)
        found = waiting.aggregate(n=Count("id"), oldest=Min("created_at"))
        yield GaugeMetricFamily(
            "sd_build_queue_depth", "Queued builds no worker has started.", value=found["n"]
        )
        yield GaugeMetricFamily(
            "sd_build_queue_oldest_wait_seconds",
            "How long the oldest queued build has waited for a worker.",
            value=_seconds_since(found["oldest"], now),
        )

    def _durations(self) -> Metric:
        ran = Build.objects.filter(
            status__in=RAN, start_time__isnull=False, end_time__isnull=False
        ).order_by()
        duration = ExpressionWrapper(F("end_time") - F("start_time"), output_field=DurationField())
        buckets = {
            f"le_{bound}": Count(
                "id", filter=Q(end_time__lte=F("start_time") + timedelta(seconds=bound))
            )
            for bound in DURATION_BUCKETS
        }
        rows = ran.values("status").annotate(n=Count("id"), total=Sum(duration), **buckets)
        family = HistogramMetricFamily(
            "sd_build_duration_seconds",
            "Run time of builds that ran, from start to end.",
            labels=["status"],
        )
        by_status: dict[str, dict[str, Any]] = {row["status"]: dict(row) for row in rows}
        for status in RAN:
            row = by_status.get(status)
            counts = [(str(float(b)), row[f"le_{b}"] if row else 0) for b in DURATION_BUCKETS]
            family.add_metric(
                [status],
                [*counts, ("+Inf", row["n"] if row else 0)],
                sum_value=_duration_seconds(row["total"]) if row else 0.0,
            )
        return family

    def _outbox(self, now: datetime) -> Iterator[Metric]:
        found = OutboxMessage.objects.filter(done_at__isnull=True).aggregate(
            n=Count("id"), oldest=Min("created_at")
        )
        yield GaugeMetricFamily(
            "sd_outbox_backlog",
            "Work after status changes (next jobs, commit statuses, notices) not yet done.",
            value=found["n"],
        )
        yield GaugeMetricFamily(
            "sd_outbox_oldest_seconds",
            "Age of the oldest outbox row not yet done.",
            value=_seconds_since(found["oldest"], now),
        )


class QueueCollector(Collector):
    """The depth of django-q2's task queue, asked of whichever broker the settings chose."""

    help = "Tasks (build starts and stops, webhooks, periodic work) waiting for a worker."

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("sd_task_queue_depth", self.help)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("sd_task_queue_depth", self.help)
        try:
            family.add_metric([], get_broker().queue_size())
        except Exception as exc:
            # A broker that cannot answer (Redis down) leaves the gauge empty; the rest of the
            # page is still worth having.
            logger.warning("The task queue's depth is unknown: %s", exc)
        yield family


REGISTRY.register(DatabaseCollector())
REGISTRY.register(QueueCollector())


def allowed(request: HttpRequest) -> bool:
    """The token rule in the module's docstring."""
    token = settings.SD_METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    user = getattr(request, "user", None)
    return bool(user and user.is_active and user.is_superuser)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format, for a caller the token rule lets in."""
    if not allowed(request):
        how = (
            "Send the metrics token as Authorization: Bearer <token>."
            if settings.SD_METRICS_TOKEN
            else "Sign in as a superuser, or set SD_METRICS_TOKEN and send it as a bearer token."
        )
        response = HttpResponse(how + "\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)

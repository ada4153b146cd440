"""Benchmark: render time of the pipeline page (and the jobs list) of a 200-job pipeline.

A temporary SQLite database holds one pipeline of 200 jobs in a chain and 50 events of 200
builds each (10,000 builds); Django's test client fetches the pages, so the time is the
server's (queries, template, SVG), not the network's or the browser's.
Usage: `python bench/bench_pipeline_page.py [--rounds 30]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.demo_data import configure


def seed(jobs: int, events: int) -> int:
    from builds.models import Build, BuildStatus
    from pipelines.models import Event, Job, Pipeline

    names = [f"job{i:03d}" for i in range(jobs)]
    graph = {
        "nodes": [{"name": "~commit"}] + [{"name": n} for n in names],
        "edges": [{"src": "~commit", "dest": names[0]}]
        + [{"src": names[i - 1], "dest": names[i], "join": True} for i in range(1, jobs)],
    }
    pipeline = Pipeline.objects.create(
        name="bench/big",
        scm_uri="local:/bench/big.git:main",
        checkout_url="/bench/big.git#main",
        scm_repo={"name": "bench/big", "branch": "main", "private": False},
        workflow_graph=graph,
    )
    job_rows = Job.objects.bulk_create(Job(pipeline=pipeline, name=n) for n in names)
    event_rows = Event.objects.bulk_create(
        Event(
            pipeline=pipeline,
            sha=f"{e:040x}",
            start_from="~commit",
            commit={"message": f"commit {e}", "author": {"name": "Bench"}},
            workflow_graph=graph,
            status=Event.Status.SUCCESS,
        )
        for e in range(events)
    )
    Build.objects.bulk_create(
        (
            Build(job=j, event=ev, number=i * 1000 + k, sha=ev.sha, status=BuildStatus.SUCCESS)
            for i, ev in enumerate(event_rows)
            for k, j in enumerate(job_rows)
        ),
        batch_size=2000,
    )
    Pipeline.objects.filter(pk=pipeline.pk).update(last_event=event_rows[-1])
    return pipeline.pk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sd-bench-page-") as tmp:
        configure(Path(tmp) / "data")
        from django.contrib.auth.models import User
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        pipeline_id = seed(200, 50)
        client = Client()
        client.force_login(User.objects.create_user("bench"))
        for path in (f"/pipelines/{pipeline_id}", f"/pipelines/{pipeline_id}/jobs"):
            client.get(path)  # warm the template cache
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200
            with CaptureQueriesContext(connection) as queries:
                size = len(client.get(path).content)
            ordered = sorted(times)
            print(
                f"{path}: median {statistics.median(times):.0f} ms, "
                f"p95 {ordered[int(0.95 * (len(ordered) - 1))]:.0f} ms, "
                f"{len(queries.captured_queries)} queries, {size // 1024} KiB of HTML"
            )


if __name__ == "__main__":
    main()

"""Benchmark: a step prints a line; how long until Chromium shows it on the build page?

Runs the real stack (daphne + a django-q2 worker + SQLite, as `make run` does) in a temporary
data dir, opens the build page in Debian's Chromium before the build starts, and records when
each line appears (a MutationObserver on the log). Each line carries the time the step printed
it (`date +%s%3N`); browser and step share the machine's clock.
Then the same build again with no page open. For both it counts the log batches the launcher
sent (one request each) per second of the step.
Usage: `python bench/bench_live_logs.py [--lines 200] [--gap 0.05]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.demo_data import configure, make_repo
from tools.live_stack import LiveStack
from tools.screenshots import CHROMIUM, CHROMIUM_ARGS

OBSERVER = """
window.__seen = [];
new MutationObserver(records => {
  const now = Date.now();
  for (const r of records) for (const node of r.addedNodes) {
    if (node.classList && node.classList.contains('line')) {
      const m = /tick \\d+ (\\d{13})/.exec(node.textContent);
      if (m) window.__seen.push(now - Number(m[1]));
    }
  }
}).observe(document.getElementById('steps'), {childList: true, subtree: true});
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between printed lines")
    args = parser.parse_args()
    step = (
        f"sleep 2; for i in $(seq 1 {args.lines}); "
        f'do echo "tick $i $(date +%s%3N)"; sleep {args.gap}; done'
    )
    config = (
        "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n"
        f"    steps:\n      - ticks: '{step}'\n"
    )
    with tempfile.TemporaryDirectory(prefix="sd-bench-logs-") as tmp:
        root = Path(tmp)
        env = configure(root / "data")
        from django.conf import settings
        from django.contrib.auth.models import User

        from builds.models import Build
        from pipelines import services

        user = User.objects.create_user("bench", password="bench password")
        settings.SD_LOCAL_REPO_ROOTS = [str(root)]
        repo = make_repo(root, "ticks", {"screwdriver.yaml": config}, "ticks")
        stack = LiveStack.start(
            database_url=env["DATABASE_URL"],
            data_dir=root / "data",
            secret_key=env["SD_SECRET_KEY"],
        )
        settings.SD_API_URL = stack.url
        from playwright.sync_api import sync_playwright

        try:
            pipeline = services.create_pipeline(checkout_url=f"{repo}#main", user=user)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(base_url=stack.url)
                page.goto("/login/")
                page.get_by_label("Username").fill("bench")
                page.get_by_label("Password").fill("bench password")
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url("**/pipelines")
                event = services.start_event(
                    pipeline=pipeline,
                    start_from="~commit",
                    creator=services.Creator(name="bench", username="bench"),
                )
                build = Build.objects.get(event=event)
                page.goto(f"/pipelines/{pipeline.pk}/builds/{build.pk}")
                page.evaluate(OBSERVER)
                deadline = time.monotonic() + 60 + args.lines * args.gap * 2
                while time.monotonic() < deadline:
                    if len(page.evaluate("window.__seen")) >= args.lines:
                        break
                    page.wait_for_timeout(200)
                seen = [float(v) for v in page.evaluate("window.__seen")]
                live = page.locator("#build").get_attribute("data-live")
                browser.close()
            watched_rate = batches_per_second(build.pk)
            unwatched = Build.objects.get(
                event=services.start_event(
                    pipeline=pipeline,
                    start_from="~commit",
                    creator=services.Creator(name="bench", username="bench"),
                )
            )
            deadline = time.monotonic() + 60 + args.lines * args.gap * 2
            while time.monotonic() < deadline and not unwatched.is_finished:
                time.sleep(0.2)
                unwatched.refresh_from_db()
            unwatched_rate = batches_per_second(unwatched.pk)
        finally:
            stack.stop()
    if not seen:
        raise SystemExit("No line reached the page.")
    print(f"lines seen: {len(seen)}/{args.lines} (WebSocket live: {live})")
    print(
        f"print -> shown in Chromium: median {statistics.median(seen):.0f} ms, "
        f"p95 {percentile(seen, 95):.0f} ms, p99 {percentile(seen, 99):.0f} ms, "
        f"min {min(seen):.0f} ms, max {max(seen):.0f} ms"
    )
    print(
        f"log requests from the step: {watched_rate:.1f}/s with the page open, "
        f"{unwatched_rate:.1f}/s with none"
    )


def batches_per_second(build_id: int) -> float:
    """Log batches the launcher sent for the step `ticks`, per second the step ran."""
    from builds.models import LogBatch, Step

    step = Step.objects.get(build_id=build_id, name="ticks")
    assert step.start_time is not None and step.end_time is not None
    batches = LogBatch.objects.filter(step=step).count()
    return batches / (step.end_time - step.start_time).total_seconds()


if __name__ == "__main__":
    main()

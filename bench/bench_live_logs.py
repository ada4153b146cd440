"""Benchmark: a step prints a line; how long until Chromium shows it on the build page?

Runs the real stack (daphne + a django-q2 worker + SQLite, as `make run` does) in a temporary
data dir, opens the build page in Debian's Chromium before the build starts, and records when
each line appears (a MutationObserver on the log). Each line carries the time the step printed
it (`date +%s%3N`); browser and step share the machine's clock.
The watched build runs twice: with the launcher's log socket (the default), then with the
server restarted with `SD_LOG_SOCKET=false` (HTTP batches only). Then the same build with no
page open. For each it counts the step's log batches the launcher sent by HTTP (one request
each) and over the socket (one frame each) per second of the step.
Usage: `python bench/bench_live_logs.py [--lines 200] [--gap 0.05]`.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
    results: list[tuple[str, list[float], str | None, Rates]] = []
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
            extra_env={"SD_LOG_SOCKET": "true"},
        )
        settings.SD_API_URL = stack.url
        from playwright.sync_api import sync_playwright

        def start() -> Build:
            event = services.start_event(
                pipeline=pipeline,
                start_from="~commit",
                creator=services.Creator(name="bench", username="bench"),
            )
            return Build.objects.get(event=event)

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
                for label, socket in (("log socket", True), ("HTTP only", False)):
                    if stack.env["SD_LOG_SOCKET"] != str(socket).lower():
                        # The launch spec offers the socket or not: the server reads the setting.
                        stack.env["SD_LOG_SOCKET"] = str(socket).lower()
                        stack.stop_server()
                        stack.start_server()
                    build = start()
                    page.goto(f"/pipelines/{pipeline.pk}/builds/{build.pk}")
                    page.evaluate(OBSERVER)
                    deadline = time.monotonic() + 60 + args.lines * args.gap * 2
                    while time.monotonic() < deadline:
                        if len(page.evaluate("window.__seen")) >= args.lines:
                            break
                        page.wait_for_timeout(200)
                    seen = [float(v) for v in page.evaluate("window.__seen")]
                    live = page.locator("#build").get_attribute("data-live")
                    wait_finished(build, deadline)
                    results.append((label, seen, live, rates(build.pk, stack.data_dir)))
                browser.close()
            unwatched = start()
            wait_finished(unwatched, time.monotonic() + 60 + args.lines * args.gap * 2)
            results.append(("no page open", [], None, rates(unwatched.pk, stack.data_dir)))
        finally:
            stack.stop()
    print(f"step: {args.lines} lines, one every {args.gap * 1000:.0f} ms")
    for label, seen, live, (http, frames) in results:
        print(f"{label}: log requests {http:.1f}/s by HTTP, {frames:.1f} frames/s on the socket")
        if not seen:
            continue
        print(
            f"  lines seen: {len(seen)}/{args.lines} (WebSocket live: {live}); "
            f"print -> shown in Chromium: median {statistics.median(seen):.0f} ms, "
            f"p95 {percentile(seen, 95):.0f} ms, p99 {percentile(seen, 99):.0f} ms, "
            f"min {min(seen):.0f} ms, max {max(seen):.0f} ms"
        )
    if not results[0][1]:
        raise SystemExit("No line reached the page.")


# The step's batches per second of the step: by HTTP (requests), over the socket (frames).
Rates = tuple[float, float]


def wait_finished(build: Any, deadline: float) -> None:
    while time.monotonic() < deadline and not build.is_finished:
        time.sleep(0.2)
        build.refresh_from_db()


def rates(build_id: int, data_dir: Path) -> Rates:
    """The step `ticks`'s log batches per second it ran: those the launcher says it sent over
    its socket (its log's summary line), and the rest of what the server stored (by HTTP)."""
    from builds.models import LogBatch, Step

    step = Step.objects.get(build_id=build_id, name="ticks")
    assert step.start_time is not None and step.end_time is not None
    seconds = (step.end_time - step.start_time).total_seconds()
    batches = LogBatch.objects.filter(step=step).count()
    frames = 0
    for log in data_dir.glob(f"workspaces/build-{build_id}.launcher.log"):
        found = re.search(r"ticks \d+ by HTTP and (\d+) on the socket", log.read_text())
        frames = int(found[1]) if found else 0
    return (batches - frames) / seconds, frames / seconds


if __name__ == "__main__":
    main()

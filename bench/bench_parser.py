"""Time parsing a generated 500-job screwdriver.yaml: our parser against Screwdriver's own.

    .venv/bin/python bench/bench_parser.py [--jobs 500] [--rounds 20]

Both sides are timed inside their own runtime (Python here, Node for the reference), after a
warm-up parse, so process start-up is left out; the script also prints the wall time of one
`node oracle/parse.js` run including start-up, which is what a one-off parse costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "screwdriver_site.settings")

from pipelines.config import parse_pipeline_yaml  # noqa: E402

NODE_TIMER = """
const { parsePipelineYaml } = require('screwdriver-config-parser');
let input = '';
process.stdin.on('data', c => { input += c; });
process.stdin.on('end', async () => {
  const { yaml, rounds } = JSON.parse(input);
  const warm = await parsePipelineYaml({ yaml });
  if (warm.errors) { console.error(warm.errors); process.exit(1); }
  const times = [];
  for (let i = 0; i < rounds; i += 1) {
    const start = process.hrtime.bigint();
    await parsePipelineYaml({ yaml });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  process.stdout.write(JSON.stringify(times));
});
"""


def big_config(jobs: int) -> str:
    """Return a valid screwdriver.yaml with `jobs` jobs using most of the language."""
    lines = [
        "annotations:",
        "  screwdriver.cd/restrictPR: fork",
        "parameters:",
        "  region: {value: [us, eu], description: where}",
        "cache:",
        "  pipeline: [~/.npm]",
        "  event: [node_modules]",
        "shared:",
        "  image: node:20",
        "  environment: {CI_MODE: full, RETRIES: 3}",
        "  secrets: [NPM_TOKEN]",
        "  annotations: {screwdriver.cd/timeout: 30}",
        "  steps:",
        "    - install: npm ci",
        "    - test: npm test",
        "stages:",
        "  release:",
        f"    jobs: [job{jobs - 2}, job{jobs - 1}]",
        "jobs:",
    ]
    for index in range(jobs):
        lines.append(f"  job{index}:")
        if index == 0:
            lines.append("    requires: [~commit, ~pr]")
        elif index >= jobs - 2:
            lines.append(
                "    requires: []" if index == jobs - 2 else f"    requires: [job{index - 1}]"
            )
        elif index % 7 == 0:
            lines.append(f"    requires: [job{index - 1}, job{index // 2}]")
        else:
            lines.append(f"    requires: [~job{index - 1}]")
        if index % 5 == 0:
            lines.append("    matrix: {NODE: [18, 20]}")
            lines.append("    image: node:{{NODE}}")
        if index % 3 == 0:
            lines.append(f"    environment: {{JOB_INDEX: {index}, FLAG: true}}")
        if index % 11 == 0:
            lines.append("    freezeWindows: ['* 0-6 ? * SAT,SUN']")
            lines.append(f"    sourcePaths: [services/s{index}/]")
        if index % 4 == 0:
            lines.append("    steps:")
            lines.append(f"      - build: make build-{index}")
            lines.append("      - teardown-clean: make clean")
    return "\n".join(lines) + "\n"


def ours(text: str, rounds: int) -> list[float]:
    """Return our parse times in milliseconds."""
    warm = parse_pipeline_yaml(text)
    if "errors" in warm:
        raise SystemExit(f"our parser refused the benchmark file: {warm['errors']}")
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        parse_pipeline_yaml(text)
        times.append((time.perf_counter() - start) * 1000)
    return times


def reference(text: str, rounds: int) -> tuple[list[float], float]:
    """Return the reference's parse times in milliseconds, and one cold run's wall time."""
    oracle = ROOT / "oracle"
    completed = subprocess.run(
        ["node", "-e", NODE_TIMER],
        cwd=oracle,
        input=json.dumps({"yaml": text, "rounds": rounds}),
        capture_output=True,
        text=True,
        check=True,
    )
    start = time.perf_counter()
    subprocess.run(
        ["node", "parse.js"], cwd=oracle, input=text, capture_output=True, text=True, check=True
    )
    return json.loads(completed.stdout), (time.perf_counter() - start) * 1000


def main() -> None:
    """Run both parsers and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    text = big_config(args.jobs)
    result = parse_pipeline_yaml(text)
    permutations = sum(len(p) for p in result["jobs"].values())
    print(
        f"file: {len(text.encode()) // 1024} KiB, {len(result['jobs'])} jobs "
        f"(with stage jobs), {permutations} permutations, "
        f"{len(result['workflowGraph']['edges'])} edges; {args.rounds} rounds each\n"
    )
    our_times = ours(text, args.rounds)
    ref_times, cold = reference(text, args.rounds)
    print("| parser | median ms | min ms | max ms |")
    print("|---|---:|---:|---:|")
    for name, times in (("ours (Python)", our_times), ("reference (Node)", ref_times)):
        print(f"| {name} | {statistics.median(times):.1f} | {min(times):.1f} | {max(times):.1f} |")
    print(f"\nreference, one cold `node oracle/parse.js` run including start-up: {cold:.0f} ms")


if __name__ == "__main__":
    main()

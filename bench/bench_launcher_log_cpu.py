"""CPU time of the launcher's log path per 100,000 lines.

Feeds 100,000 lines of `seq 100000` output and 100,000 lines of random base64 (76 characters,
as `base64` wraps) through what the runner does with a step's output: reads of up to a
megabyte into a `StepOutput` (masking with a token, the caps), the lines into a `LogBatcher`,
and its batches packed for the wire (the sender throws them away). Reports `process_time`
(all threads, so the batcher's too) per 100,000 lines, median of five runs: CPU time, so a
busy machine changes it little.

    python bench/bench_launcher_log_cpu.py
"""

from __future__ import annotations

import base64
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from executors.launcher.logs import LogBatcher, Masker, StepOutput

READ_SIZE = 1 << 20
RUNS = 5
TOKEN = "sdtoken-" + "Zq8vR3kT1mXw9LpB2nC7yH4aJ6eF0dG5"


def seq_output(n: int = 100_000) -> bytes:
    return b"".join(b"%d\n" % i for i in range(1, n + 1))


def base64_output(n: int = 100_000) -> bytes:
    rng = random.Random(16)
    raw = rng.randbytes(57 * n)
    return base64.encodebytes(raw)  # 76 characters a line, as `base64` prints


def one_run(data: bytes) -> tuple[float, int]:
    sent: list[int] = []

    def sink(_step: str, payload: dict[str, Any]) -> None:
        sent.append(payload["count"])

    batcher = LogBatcher(sink, interval=0.01)
    output = StepOutput(Masker([TOKEN]))
    # Blocks where the code has them (what the runner sends on), lines one by one before.
    feed: Any = getattr(output, "feed_blocks", output.feed)
    finish: Any = getattr(output, "finish_blocks", output.finish)
    start = time.process_time()
    for at in range(0, len(data), READ_SIZE):
        lines = feed(data[at : at + READ_SIZE])
        if lines:
            batcher.add("step", lines)
    lines = finish()
    if lines:
        batcher.add("step", lines)
    batcher.close()
    return time.process_time() - start, sum(sent)


def main() -> None:
    print(f"launcher log path, CPU ms per 100,000 lines, median of {RUNS} (pid {os.getpid()})")
    for name, data in (("seq 100000", seq_output()), ("random base64", base64_output())):
        lines = data.count(b"\n")
        times = []
        for _ in range(RUNS):
            cpu, count = one_run(data)
            assert count == lines, (count, lines)
            times.append(cpu * 1000 * 100_000 / lines)
        print(
            f"  {name:<14} {statistics.median(times):7.1f} ms   (runs: "
            + ", ".join(f"{t:.1f}" for t in times)
            + ")"
        )


if __name__ == "__main__":
    main()

"""Log lines: splitting, caps, masking, encoding and numbered batches."""

from __future__ import annotations

import base64
import os
import threading
import time
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

from executors.launcher.environment import build_environment
from executors.launcher.logs import (
    MAX_BATCH_LINES,
    Block,
    LogBatcher,
    Masker,
    StepOutput,
    blocks_of,
)
from executors.launcher.runner import Runner, Step
from executors.launcher.workspace import Workspace


def raw(lines: list[tuple[int, bytes]]) -> list[bytes]:
    return [line for _t, line in lines]


def test_lines_are_split_across_chunks_and_the_last_partial_line_is_kept() -> None:
    out = StepOutput()
    got = raw(out.feed(b"one\ntw")) + raw(out.feed(b"o\r\n\nthr")) + raw(out.feed(b"ee"))
    assert got == [b"one", b"two", b""]
    assert raw(out.finish()) == [b"three"]
    assert out.finish() == []


def test_a_line_over_the_cap_is_cut_with_a_marker_even_across_many_chunks() -> None:
    out = StepOutput(max_line_bytes=10)
    lines = []
    for _ in range(100):
        lines += out.feed(b"x" * 7)
    lines += out.feed(b"\nshort\n" + b"y" * 11 + b"\n")
    assert raw(lines) == [
        b"x" * 10 + b" [line truncated]",
        b"short",
        b"y" * 10 + b" [line truncated]",
    ]


def test_the_cut_never_splits_a_utf8_character() -> None:
    out = StepOutput(max_line_bytes=5)
    (line,) = raw(out.feed("abcdé€\n".encode()))
    assert line == b"abcd [line truncated]"
    assert line.decode("utf-8")


def test_past_the_step_cap_one_marker_line_is_sent_and_the_rest_dropped() -> None:
    out = StepOutput(max_step_bytes=20)
    lines = raw(out.feed(b"0123456789\n0123456789\nmore\n"))
    lines += raw(out.feed(b"still more\n")) + raw(out.finish())
    assert lines == [b"0123456789", b"[log truncated: this step wrote more than 20 bytes]"]


def test_secrets_are_masked_also_across_chunks_and_line_by_line_when_multiline() -> None:
    masker = Masker(["hunter2", "", "-----BEGIN-----\nbody-line\n"])
    out = StepOutput(masker)
    lines = raw(out.feed(b"pw=hun")) + raw(out.feed(b"ter2 ok\nbody-line\n"))
    assert lines == [b"pw=**** ok", b"****"]


def test_a_secret_straddling_the_line_cap_is_still_masked() -> None:
    out = StepOutput(Masker(["abcdefgh"]), max_line_bytes=8)
    (line,) = raw(out.feed(b"xxxxxabcdefgh-and-more\n"))
    assert line == b"xxxxx*** [line truncated]"


def test_in_one_large_read_only_the_lines_over_the_cap_are_cut() -> None:
    out = StepOutput(max_line_bytes=10)
    data = b"".join(b"line %d\r\n" % n for n in range(5000)) + b"y" * 30 + b"\nend\n"
    got = raw(out.feed(data))
    assert got[:3] == [b"line 0", b"line 1", b"line 2"]
    assert got[-2:] == [b"y" * 10 + b" [line truncated]", b"end"]
    assert len(got) == 5002


def unpacked(payload: dict[str, Any]) -> list[tuple[int, bytes]]:
    """A packed batch's lines as (t, raw bytes), read back as the API reads them."""
    raw = zlib.decompress(base64.b64decode(payload["data"])).split(b"\n")
    times = [t for t, n in payload["times"] for _ in range(n)]
    assert len(raw) == len(times) == payload["count"]
    return list(zip(times, raw, strict=True))


def lines_of(payload: dict[str, Any]) -> list[str]:
    return [raw.decode() for _t, raw in unpacked(payload)]


def test_lines_travel_packed_with_their_bytes_and_times_as_written() -> None:
    sink = Sink()
    batcher = LogBatcher(sink)
    lines = [(5, "é".encode()), (5, b"\xff\xfeok"), (6, b""), (7, b"last")]
    batcher.add("s", blocks_of(lines))
    batcher.close()
    ((_step, payload),) = sink.batches
    assert payload["times"] == [[5, 2], [6, 1], [7, 1]]
    assert unpacked(payload) == lines


class Sink:
    """The HTTP edge: records every batch sent, optionally failing the first attempts."""

    def __init__(self, failures: int = 0, permanent: bool = False) -> None:
        self.batches: list[tuple[str, dict[str, Any]]] = []
        self.attempts = 0
        self.failures = failures
        self.permanent = permanent
        self.lock = threading.Lock()

    def __call__(self, step: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.attempts += 1
            if self.attempts <= self.failures:
                error = ConnectionError("down")
                error.permanent = self.permanent  # type: ignore[attr-defined]
                raise error
            self.batches.append((step, payload))


class BatchingReporter:
    """What the launcher's API reporter does, with the sink in place of HTTP."""

    def __init__(self, batcher: LogBatcher) -> None:
        self.batcher = batcher

    def step_started(self, name: str, at: datetime) -> None:
        pass

    def lines(self, name: str, blocks: list[Block]) -> None:
        self.batcher.add(name, blocks)

    def step_ended(self, name: str, at: datetime, code: int, *, last: bool = False) -> None:
        assert self.batcher.flush(name)


def assert_contiguous(batches: list[dict[str, Any]]) -> None:
    next_line = 0
    for seq, batch in enumerate(batches):
        assert batch["seq"] == seq
        assert batch["firstLine"] == next_line
        assert 0 < batch["count"] <= MAX_BATCH_LINES
        next_line += batch["count"]


def test_a_step_printing_100000_lines_yields_them_all_numbered_without_gaps(
    tmp_path: Path,
) -> None:
    sink = Sink()
    batcher = LogBatcher(sink)
    workspace = Workspace(tmp_path / "ws")
    workspace.prepare({})
    env = build_environment(
        base={"PATH": os.environ["PATH"]},
        launcher_vars=workspace.variables("t"),
        bin_dir=workspace.bin,
        job_environment=[],
        secrets={"SECRET": "line 4242"},
    )
    runner = Runner(
        workspace=workspace,
        env=env,
        reporter=BatchingReporter(batcher),
        masker=Masker(["line 4242"]),
    )
    began = time.monotonic()
    result = runner.run([Step("chatty", "seq 0 99999 | sed 's/^/line /'")])
    batcher.close()
    assert time.monotonic() - began < 10
    assert result.status == "SUCCESS"
    batches = [payload for step, payload in sink.batches if step == "chatty"]
    assert_contiguous(batches)
    texts = [text for batch in batches for text in lines_of(batch)]
    assert len(texts) == 100_000
    # A line ending with a long enough start of the secret is masked too (see masking.py).
    cut = {"line 4", "line 42", "line 424"}
    expected = [
        "****" if f"line {i}" in cut else f"line {i}".replace("line 4242", "****")
        for i in range(100_000)
    ]
    assert texts == expected


def test_a_failed_batch_is_resent_with_the_same_seq() -> None:
    sink = Sink(failures=2)
    # How long the launcher pauses between tries is not the subject here.
    batcher = LogBatcher(sink, interval=0.01, first_retry=0.01)
    batcher.add("s", blocks_of([(1, b"a"), (2, b"b")]))
    assert batcher.flush("s", timeout=10)
    batcher.add("s", blocks_of([(3, b"c")]))
    batcher.close()
    assert sink.attempts == 4
    assert [(p["seq"], p["firstLine"], p["count"]) for _s, p in sink.batches] == [
        (0, 0, 2),
        (1, 2, 1),
    ]


def test_a_resend_carries_the_same_lines_even_when_more_were_queued_meanwhile() -> None:
    # The API stored the first try but its answer was lost (a server killed mid-request); it
    # ignores a resend of a stored seq, so lines added to the resend would be lost.
    stored: list[tuple[int, int, int]] = []
    first_try = threading.Event()
    more_queued = threading.Event()

    def api(step: str, payload: dict[str, Any]) -> None:
        key = (payload["seq"], payload["firstLine"], payload["count"])
        if not first_try.is_set():
            stored.append(key)
            first_try.set()
            assert more_queued.wait(10)
            raise ConnectionError("connection reset before the answer")
        if all(seq != key[0] for seq, _, _ in stored):
            stored.append(key)

    batcher = LogBatcher(api, interval=0.01, first_retry=0.01)
    batcher.add("s", blocks_of([(1, b"a")]))
    assert first_try.wait(10)
    batcher.add("s", blocks_of([(2, b"b"), (3, b"c")]))
    more_queued.set()
    assert batcher.flush("s", timeout=10)
    batcher.close()
    assert stored == [(0, 0, 1), (1, 1, 2)]


def test_batches_are_resent_past_the_old_eight_tries_while_there_is_time_and_land_in_order() -> (
    None
):
    sink = Sink(failures=10)
    batcher = LogBatcher(sink, interval=0.01, keep_trying_for=lambda: 600.0, first_retry=0.001)
    batcher.add("s", blocks_of([(1, b"a")]))
    batcher.add("t", blocks_of([(2, b"b")]))
    assert batcher.flush(None, timeout=60)
    batcher.close()
    assert sink.attempts == 12
    assert [(name, p["seq"], p["firstLine"]) for name, p in sink.batches] == [
        ("s", 0, 0),
        ("t", 0, 0),
    ]


def test_a_batch_that_cannot_land_before_the_token_expires_is_replaced_by_a_lost_line() -> None:
    sink = Sink(failures=1)
    batcher = LogBatcher(sink, interval=0.01, keep_trying_for=lambda: 0.0)
    batcher.add("s", blocks_of([(1, b"a"), (2, b"b")]))
    batcher.flush("s", timeout=10)
    batcher.add("s", blocks_of([(3, b"c")]))
    batcher.close()
    assert [(p["seq"], p["firstLine"], lines_of(p)) for _s, p in sink.batches] == [
        (0, 0, ["[2 log lines lost: the API did not take them]"]),
        (1, 1, ["c"]),
    ]


def test_a_permanently_refused_batch_keeps_its_place_with_a_lost_line_and_no_gap() -> None:
    sink = Sink(failures=1, permanent=True)
    batcher = LogBatcher(sink, interval=0.01)
    batcher.add("s", blocks_of([(1, b"a")]))
    batcher.flush("s", timeout=10)
    batcher.add("s", blocks_of([(2, b"b")]))
    batcher.close()
    assert [(p["seq"], p["firstLine"], lines_of(p)) for _s, p in sink.batches] == [
        (0, 0, ["[1 log line lost: the API did not take them]"]),
        (1, 1, ["b"]),
    ]


def test_when_the_lost_line_is_refused_too_the_step_sends_nothing_more(capsys) -> None:
    sink = Sink(failures=2, permanent=True)
    batcher = LogBatcher(sink, interval=0.01)
    batcher.add("s", blocks_of([(1, b"a")]))
    batcher.flush("s", timeout=10)
    batcher.add("s", blocks_of([(2, b"b")]))
    batcher.add("other", blocks_of([(3, b"c")]))
    batcher.close()
    assert [(s, p["seq"], lines_of(p)) for s, p in sink.batches] == [("other", 0, ["c"])]
    assert "dropped log batch 0 of s and the rest of its log" in capsys.readouterr().err


def test_a_flush_waits_for_its_own_steps_lines_not_for_a_step_that_never_pauses() -> None:
    loud_sent = 0

    def api(step: str, payload: dict[str, Any]) -> None:
        nonlocal loud_sent
        time.sleep(0.01)
        if step == "loud" and loud_sent < 100:
            # Another line comes while each batch is on its way: the batcher is never idle.
            loud_sent += 1
            batcher.add("loud", blocks_of([(loud_sent, b"more")]))

    batcher = LogBatcher(api, interval=0.01)
    batcher.add("quiet", blocks_of([(1, b"done")]))
    batcher.add("loud", blocks_of([(0, b"start")]))
    began = time.monotonic()
    assert batcher.flush("quiet", timeout=10)
    waited = time.monotonic() - began
    batcher.close()
    assert loud_sent == 100
    assert waited < 0.5, f"the flush of a quiet step waited {waited:.1f} s for the loud one"


def test_lines_go_out_within_a_quarter_second_without_a_flush() -> None:
    sink = Sink()
    batcher = LogBatcher(sink)
    batcher.add("s", blocks_of([(1, b"a")]))
    time.sleep(0.6)
    sent = len(sink.batches)
    batcher.close()
    assert sent == 1


def test_the_first_line_after_a_quiet_spell_goes_out_at_once_and_a_burst_is_batched() -> None:
    sink = Sink()
    batcher = LogBatcher(sink, interval=1.0)
    time.sleep(1.1)  # quiet for longer than the interval
    batcher.add("s", blocks_of([(1, b"first")]))
    deadline = time.monotonic() + 0.3
    while not sink.batches and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(sink.batches) == 1, "the first line waited for the interval"
    for i in range(20):
        batcher.add("s", blocks_of([(2 + i, b"burst")]))
    time.sleep(0.3)
    assert len(sink.batches) == 1, "a burst right after a send must wait for the next tick"
    batcher.close()
    assert sum(payload["count"] for _, payload in sink.batches) == 21


def test_a_flood_goes_in_batches_of_at_most_max_bytes_and_few_requests() -> None:
    sink = Sink()
    batcher = LogBatcher(sink, max_bytes=1000)
    lines = [(1, b"%09d" % n) for n in range(1000)]  # ten bytes each, newline counted
    batcher.add("s", blocks_of(lines[:250]))
    batcher.add("s", blocks_of(lines[250:]))
    batcher.close()
    batches = [payload for _, payload in sink.batches]
    assert [b["count"] for b in batches] == [100] * 10
    assert [text for b in batches for text in lines_of(b)] == [raw.decode() for _, raw in lines]
    assert_contiguous(batches)


def test_a_line_longer_than_a_batch_goes_alone() -> None:
    sink = Sink()
    batcher = LogBatcher(sink, max_bytes=10)
    batcher.add("s", blocks_of([(1, b"x" * 50), (2, b"y")]))
    batcher.close()
    assert [lines_of(p) for _, p in sink.batches] == [["x" * 50], ["y"]]


def test_while_too_much_waits_to_be_sent_adding_holds_the_step_back() -> None:
    release = threading.Event()

    def slow_api(step: str, payload: dict[str, Any]) -> None:
        assert release.wait(10)

    batcher = LogBatcher(slow_api, max_bytes=100, max_queued_bytes=300, hold_back=5.0)
    batcher.add("s", blocks_of([(1, b"x" * 99)]))  # on the wire, the API not answering yet
    began = time.monotonic()
    batcher.add("s", blocks_of([(2, b"y" * 99)] * 2))
    assert time.monotonic() - began < 2, "under the limit, adding does not wait"
    began = time.monotonic()
    threading.Timer(0.1, release.set).start()
    batcher.add("s", blocks_of([(3, b"z" * 99)]))
    waited = time.monotonic() - began
    # Over the limit, adding waits until the API takes a batch (not the whole hold-back).
    assert 0.1 <= waited < 4, waited
    batcher.close()


def test_lines_go_sooner_while_the_sender_says_it_is_fast() -> None:
    for fast in (False, True):
        sent: list[float] = []

        def api(step: str, payload: dict[str, Any], sent: list[float] = sent) -> dict[str, Any]:
            sent.append(time.monotonic())
            # An HTTP answer that says a page watches no longer hurries the batcher by itself.
            return {"stored": True, "live": True}

        def says(fast: bool = fast) -> bool:
            return fast

        batcher = LogBatcher(api, interval=5.0, live_interval=0.01, fast=says)
        batcher.add("s", blocks_of([(1, b"first")]))  # after a quiet spell: at once
        deadline = time.monotonic() + 5
        while not sent and time.monotonic() < deadline:
            time.sleep(0.002)
        batcher.add("s", blocks_of([(2, b"second")]))
        # Fast (the log socket is open), the second line goes 10 ms after the first; else 5 s.
        deadline = time.monotonic() + (2 if fast else 0.05)
        while len(sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.002)
        assert len(sent) == (2 if fast else 1), fast
        batcher.close()
        assert len(sent) == 2


def test_one_read_is_one_block_and_a_batch_cuts_it_at_a_line_by_lines_and_bytes() -> None:
    out = StepOutput()
    blocks = out.feed_blocks(b"".join(b"%02d\n" % n for n in range(10)))
    assert [block.n for block in blocks] == [10]
    by_lines = Sink()
    batcher = LogBatcher(by_lines, max_lines=3)
    batcher.add("s", blocks)
    batcher.close()
    assert [p["count"] for _, p in by_lines.batches] == [3, 3, 3, 1]
    by_bytes = Sink()
    batcher = LogBatcher(by_bytes, max_bytes=10)  # three bytes a line: three lines a batch
    batcher.add("s", blocks)
    batcher.close()
    for sink in (by_lines, by_bytes):
        batches = [payload for _, payload in sink.batches]
        assert [text for b in batches for text in lines_of(b)] == [f"{n:02d}" for n in range(10)]
        assert_contiguous(batches)


def test_a_line_over_the_cap_is_found_wherever_it_stands_in_a_block() -> None:
    for before in range(0, 40, 7):
        for length in (10, 11, 25):
            data = b"ab\n" * before + b"z" * length + b"\nend\n"
            got = raw(StepOutput(max_line_bytes=10).feed(data))
            assert got == [b"ab"] * before + [
                b"z" * 10 + (b" [line truncated]" if length > 10 else b""),
                b"end",
            ]

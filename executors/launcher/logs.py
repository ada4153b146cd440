"""Turning a step's output into numbered log lines and shipping them in batches."""

from __future__ import annotations

import base64
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import groupby, repeat
from operator import attrgetter
from typing import Any, NamedTuple

from .masking import Masker

DEFAULT_MAX_LINE_BYTES = 65536
DEFAULT_MAX_STEP_BYTES = 268435456
LINE_TRUNCATED = b" [line truncated]"

# A line is (milliseconds since the epoch, raw bytes without the newline).
Line = tuple[int, bytes]


class Block(NamedTuple):
    """`n` lines written at millisecond `t`, joined by newlines in `data` (no newline at
    the end: one empty line is `Block(t, b"", 1)`). The log travels in these, never one object
    per line."""

    t: int
    data: bytes
    n: int

    @property
    def size(self) -> int:
        """Bytes of the lines with a newline each, as the caps count them."""
        return len(self.data) + 1

    def lines(self) -> list[Line]:
        """The block's lines one by one."""
        return list(zip(repeat(self.t), self.data.split(b"\n"), strict=False))


def block_of(t: int, lines: list[bytes]) -> Block:
    """The block of these lines (at least one), written at `t`."""
    return Block(t, b"\n".join(lines), len(lines))


def blocks_of(lines: Iterable[Line]) -> list[Block]:
    """Lines one by one as blocks: one per run of lines written at the same millisecond."""
    return [block_of(t, [raw for _t, raw in run]) for t, run in groupby(lines, key=lambda x: x[0])]


def lines_of(blocks: Iterable[Block]) -> list[Line]:
    """Blocks as lines one by one."""
    return [line for block in blocks for line in block.lines()]


def _overlong(data: bytes, limit: int) -> bool:
    """Whether a line of `data` (lines joined by newlines) is longer than `limit` bytes."""
    if len(data) <= limit:
        return False
    start, end = 0, len(data)
    while end - start > limit:
        # The last newline among the next limit + 1 bytes: none means the line starting at
        # `start` is longer than `limit`; the lines before it are all shorter.
        last = data.rfind(b"\n", start, start + limit + 1)
        if last < 0:
            return True
        start = last + 1
    return False


def now_ms() -> int:
    """Milliseconds since the epoch, the `t` of a log line."""
    return time.time_ns() // 1_000_000


def _cut(raw: bytes, limit: int) -> bytes:
    """`raw` cut to at most `limit` bytes, never inside a UTF-8 sequence."""
    if len(raw) <= limit:
        return raw
    cut = limit
    # Back off over continuation bytes so a valid UTF-8 line stays valid after the cut.
    while cut > 0 and limit - cut < 3 and (raw[cut] & 0xC0) == 0x80:
        cut -= 1
    return raw[:cut] if cut > 0 else raw[:limit]


@dataclass
class StepOutput:
    """Splits one step's raw output into lines, masking secrets and applying the size caps.

    Works on what each read brought (up to a megabyte) as one block: the checks that every line
    needs (a trailing `\\r`, the caps, masking) are done on the block's bytes, and only the rare
    lines they pick out are looked at one by one.
    """

    masker: Masker = field(default_factory=lambda: Masker(()))
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_step_bytes: int = DEFAULT_MAX_STEP_BYTES
    _partial: bytes = b""
    _overlong: bool = False
    _written: int = 0
    _capped: bool = False

    @property
    def _keep(self) -> int:
        # Keep a little more than the cap so that a secret straddling the cut is still masked.
        return self.max_line_bytes + self.masker.longest

    def feed(self, data: bytes) -> list[Line]:
        """The complete lines in `data` (with what was left over from earlier chunks)."""
        return lines_of(self.feed_blocks(data))

    def finish(self) -> list[Line]:
        """The last, unterminated line, if any."""
        return lines_of(self.finish_blocks())

    def feed_blocks(self, data: bytes) -> list[Block]:
        """`feed` as blocks: what the runner sends on."""
        if self._capped:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            self._hold(data)
            return []
        block, tail = data[:end], data[end + 1 :]
        first_overlong = self._overlong
        if first_overlong:
            # The held start of an overlong line stands for all of it: drop the rest.
            cut = block.find(b"\n")
            block = self._partial + (block[cut:] if cut >= 0 else b"")
        elif self._partial:
            block = self._partial + block
        self._partial = b""
        self._overlong = False
        out: list[Block] = []
        self._emit(block, now_ms(), out, first_overlong)
        self._hold(tail)
        return out

    def finish_blocks(self) -> list[Block]:
        """`finish` as blocks."""
        out: list[Block] = []
        if (self._partial or self._overlong) and not self._capped:
            self._emit(self._partial, now_ms(), out, self._overlong)
        self._partial = b""
        self._overlong = False
        return out

    def _hold(self, tail: bytes) -> None:
        if self._overlong or not tail:
            return
        self._partial += tail
        if len(self._partial) > self._keep:
            self._partial = self._partial[: self._keep]
            self._overlong = True

    def _emit(self, block: bytes, t: int, out: list[Block], first_overlong: bool) -> None:
        """Add the lines of `block` (lines joined by newlines) to `out`."""
        if b"\r\n" in block or block.endswith(b"\r"):
            # One trailing carriage return per line goes, as a terminal would show it.
            block = block.replace(b"\r\n", b"\n")
            block = block[:-1] if block.endswith(b"\r") else block
        # The step cap counts what the step wrote, before masking and cutting; a newline each.
        if self._written + len(block) + 1 <= self.max_step_bytes:
            self._written += len(block) + 1
            self._emit_within_caps(block, t, out, first_overlong)
            return
        lines = block.split(b"\n")
        kept = 0
        for raw in lines:
            self._written += len(raw) + 1
            if self._written > self.max_step_bytes:
                break
            kept += 1
        if kept:
            self._emit_within_caps(b"\n".join(lines[:kept]), t, out, first_overlong)
        message = f"[log truncated: this step wrote more than {self.max_step_bytes} bytes]"
        out.append(Block(t, message.encode(), 1))
        self._capped = True

    def _emit_within_caps(
        self, block: bytes, t: int, out: list[Block], first_overlong: bool
    ) -> None:
        data = self.masker.block(block)
        count = data.count(b"\n") + 1
        limit = self.max_line_bytes
        if first_overlong or _overlong(data, limit):
            # Rare: only here is the block taken apart line by line.
            lines = data.split(b"\n")
            for index, raw in enumerate(lines):
                if len(raw) > limit or (index == 0 and first_overlong):
                    lines[index] = _cut(raw, limit) + LINE_TRUNCATED
            data = b"\n".join(lines)
        out.append(Block(t, data, count))


def pack_lines(blocks: list[Block]) -> dict[str, Any]:
    """The wire form of a batch\'s lines: `count`, `data` (base64 of the zlib of the raw
    lines joined by newlines) and `times` (runs of `[t, n]`: n lines at millisecond t)."""
    data = b"\n".join(map(attrgetter("data"), blocks))
    times: list[list[int]] = []
    for block in blocks:
        if times and times[-1][0] == block.t:
            times[-1][1] += block.n
        else:
            times.append([block.t, block.n])
    return {
        "count": sum(map(attrgetter("n"), blocks)),
        "data": base64.b64encode(zlib.compress(data, 1)).decode("ascii"),
        "times": times,
    }


@dataclass
class _StepQueue:
    # Lines waiting, in the blocks they came in.
    pending: deque[Block] = field(default_factory=deque)
    pending_lines: int = 0
    pending_bytes: int = 0
    next_line: int = 0
    seq: int = 0
    failures: int = 0
    # The batch on the wire and its payload: a resend carries exactly these lines, never lines
    # queued since, because the API keeps a seq it already stored and ignores a resend of it.
    in_flight: list[Block] | None = None
    payload: dict[str, Any] | None = None
    in_flight_bytes: int = 0
    # The batch on the wire is the line that stands for a batch the API did not take.
    lost_marker: bool = False
    # The API took neither a batch nor its marker: the step's later lines are not sent.
    abandoned: bool = False


def _size(blocks: list[Block]) -> int:
    """Bytes of the lines of `blocks` with a newline each, as the caps count them."""
    return sum(len(block.data) + 1 for block in blocks)


def _count(blocks: list[Block]) -> int:
    return sum(map(attrgetter("n"), blocks))


def _split(block: Block, room: int, lines_room: int) -> tuple[Block, Block] | None:
    """`block` cut after its last line that fits in `room` bytes and `lines_room` lines, or
    None when not even its first line fits."""
    data = block.data
    end = data.rfind(b"\n", 0, room)
    if end < 0:
        return None
    count = data.count(b"\n", 0, end) + 1
    if count > lines_room:
        # Rare (a batch holds up to MAX_BATCH_LINES lines): find the lines_room-th newline.
        end = len(data) - len(data.split(b"\n", lines_room)[-1]) - 1
        count = lines_room
    if count <= 0:
        return None
    return Block(block.t, data[:end], count), Block(block.t, data[end + 1 :], block.n - count)


def _first_line(block: Block) -> tuple[Block, Block] | None:
    """`block` cut after its first line; None when that is all of it."""
    end = block.data.find(b"\n")
    if end < 0:
        return None
    return Block(block.t, block.data[:end], 1), Block(block.t, block.data[end + 1 :], block.n - 1)


# send(step_name, {"seq", "firstLine", "count", "data", "times"}) returns the API's answer
# and raises on failure; an exception with a true `permanent` attribute (a 4xx) drops the
# batch, anything else is resent after a back-off.
Sender = Callable[[str, dict[str, Any]], Any]

FIRST_RETRY = 0.5
MAX_RETRY = 10.0
# A batch holds at most this much (a newline counted per line) and this many lines.
MAX_BATCH_BYTES = 1 << 20
MAX_BATCH_LINES = 100_000
# While more than this waits to be sent, `add` holds the step back a little (see `add`).
MAX_QUEUED_BYTES = 4 * MAX_BATCH_BYTES
MAX_QUEUED_LINES = 2 * MAX_BATCH_LINES


class LogBatcher:
    """Sends each step's lines in numbered batches from a background thread.

    A batch goes when it is full (`max_bytes` or `max_lines`), and otherwise at the first
    chance `interval` after the previous one started (`live_interval` while `fast()` says so:
    the log socket is open because a page watches the build): a line waits at most about that
    long, the first line after a quiet spell goes at once, and a step that prints a flood is
    sent in full batches as fast as the API takes them, never one request per line. One batch
    is on its way at a time: what arrives meanwhile goes in the next one.

    A batch the API does not take is resent, in order, with a doubling back-off, for as long
    as `keep_trying_for()` says there is time (the build token's life): an API restart only
    delays the log. A 4xx, or running out of time, drops a batch: its place (the same seq and
    first line, since the API takes batches only in order) goes to one line saying how many
    lines were lost. If the API does not take that line either, the step's later lines are
    not sent; each drop is also told on stderr.
    """

    def __init__(
        self,
        send: Sender,
        *,
        interval: float = 0.25,
        live_interval: float = 0.025,
        fast: Callable[[], bool] = lambda: False,
        max_lines: int = MAX_BATCH_LINES,
        max_bytes: int = MAX_BATCH_BYTES,
        keep_trying_for: Callable[[], float] = lambda: 3600.0,
        first_retry: float = FIRST_RETRY,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        max_queued_lines: int = MAX_QUEUED_LINES,
        hold_back: float = 1.0,
    ) -> None:
        self._send = send
        self._first_retry = first_retry
        self._interval = interval
        self._live_interval = min(interval, live_interval)
        self._fast = fast
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._max_queued_bytes = max_queued_bytes
        self._max_queued_lines = max_queued_lines
        self._hold_back = hold_back
        self._keep_trying_for = keep_trying_for
        self._steps: dict[str, _StepQueue] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._flushing = 0
        self._last_send = -interval
        self._queued_bytes = 0
        self._queued_lines = 0
        self._thread = threading.Thread(target=self._run, name="sd-log-batcher", daemon=True)
        self._thread.start()

    def add(self, step: str, blocks: list[Block]) -> None:
        """Queue lines of `step`; they are numbered in the order they arrive.

        While more than `max_queued_bytes` (or lines) wait to be sent, this waits up to
        `hold_back` seconds for the API to catch up: a step printing faster than the API
        stores its log is slowed down (its pipe fills), as a slow terminal slows a program,
        rather than its log piling up in memory. The caller keeps control meanwhile.
        """
        if not blocks:
            return
        size = _size(blocks)
        count = _count(blocks)
        with self._cond:
            queue = self._steps.setdefault(step, _StepQueue())
            if queue.abandoned:
                return
            queue.pending.extend(blocks)
            queue.pending_lines += count
            queue.pending_bytes += size
            self._queued_bytes += size
            self._queued_lines += count
            self._cond.notify_all()
            deadline = time.monotonic() + self._hold_back
            while (
                self._queued_bytes > self._max_queued_bytes
                or self._queued_lines > self._max_queued_lines
            ) and self._thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def flush(self, step: str | None = None, timeout: float = 30.0) -> bool:
        """Wait until the lines of `step` (or of all steps) are sent; False on timeout.

        Only `step`'s own lines are waited for: a step's end is reported while the next step
        keeps the batcher sending without a pause."""
        deadline = time.monotonic() + timeout
        with self._cond:
            # While someone waits for them, batches go as soon as they can.
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._has_pending(step) or (step is None and self._busy):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Send what is left, then stop the thread."""
        self.flush(None, timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _has_pending(self, step: str | None) -> bool:
        queues = [self._steps.get(step)] if step is not None else list(self._steps.values())
        return any(q is not None and (q.pending or q.in_flight) for q in queues)

    def _wait(self) -> float | None:
        """Seconds until a batch is due: 0 for now, None while nothing waits."""
        waiting = [q for q in self._steps.values() if q.pending or q.in_flight]
        if not waiting:
            return None
        if self._flushing or any(
            q.in_flight or q.pending_bytes >= self._max_bytes or q.pending_lines >= self._max_lines
            for q in waiting
        ):
            return 0.0
        interval = self._live_interval if self._fast() else self._interval
        return max(0.0, self._last_send + interval - time.monotonic())

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    wait = self._wait()
                    if wait is None and self._closing:
                        return
                    if wait == 0.0:
                        break
                    self._cond.wait(wait)
                self._busy = True
            try:
                retry_in = self._send_pending()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if retry_in:
                time.sleep(retry_in)

    def _take(self, queue: _StepQueue) -> list[Block]:
        """Move the next batch's lines out of `queue.pending` (at least one line)."""
        taken: list[Block] = []
        size = 0
        count = 0
        while queue.pending and count < self._max_lines:
            block = queue.pending[0]
            room = self._max_bytes - size
            lines_room = self._max_lines - count
            if block.size <= room and block.n <= lines_room:
                queue.pending.popleft()
                taken.append(block)
                size += block.size
                count += block.n
                continue
            # Part of this block fits: as many lines as the room holds, one at least.
            parts = _split(block, room, lines_room)
            if parts is None and not taken:
                parts = _first_line(block)
                if parts is None:
                    # One line longer than a batch goes alone.
                    queue.pending.popleft()
                    taken.append(block)
                    size += block.size
                    count += block.n
                    break
            if parts is not None:
                head, rest = parts
                taken.append(head)
                size += head.size
                count += head.n
                queue.pending[0] = rest
            break
        queue.pending_lines -= count
        queue.pending_bytes -= size
        queue.in_flight_bytes = size
        return taken

    def _next_batch(self) -> tuple[str, _StepQueue] | None:
        with self._cond:
            for name, queue in self._steps.items():
                if queue.in_flight:
                    return name, queue
                if queue.pending:
                    queue.in_flight = self._take(queue)
                    return name, queue
        return None

    def _send_pending(self) -> float:
        """Send the batches that are due; when one failed, how long to wait before resending."""
        while True:
            found = self._next_batch()
            if found is None:
                return 0.0
            name, queue = found
            blocks = queue.in_flight
            assert blocks is not None
            count = _count(blocks)
            if queue.payload is None:
                queue.payload = {"seq": queue.seq, "firstLine": queue.next_line}
                queue.payload.update(pack_lines(blocks))
            try:
                with self._cond:
                    self._last_send = time.monotonic()
                self._send(name, queue.payload)
            except Exception as exc:
                queue.failures += 1
                permanent = bool(getattr(exc, "permanent", False))
                pause = min(MAX_RETRY, self._first_retry * 2 ** (queue.failures - 1))
                if not permanent and pause < self._keep_trying_for():
                    if queue.failures == 1:
                        sys.stderr.write(
                            f"launcher: resending log batch {queue.seq} of {name}: {exc}\n"
                        )
                    return pause
                self._give_up(name, queue, count, exc)
                continue
            with self._cond:
                self._done_with(queue, count)
                queue.next_line += count
                queue.seq += 1
                queue.lost_marker = False
                if not self._due_now(queue):
                    return 0.0

    def _due_now(self, queue: _StepQueue) -> bool:
        # After a send, only a full batch (or a flush) goes at once; the rest waits its turn.
        return bool(self._flushing) or any(
            q.in_flight or q.pending_bytes >= self._max_bytes or q.pending_lines >= self._max_lines
            for q in self._steps.values()
        )

    def _done_with(self, queue: _StepQueue, count: int) -> None:
        """The batch on the wire (`count` lines) is settled: it no longer counts as queued."""
        self._queued_bytes -= queue.in_flight_bytes
        self._queued_lines -= count
        queue.in_flight = None
        queue.payload = None
        queue.in_flight_bytes = 0
        queue.failures = 0
        self._cond.notify_all()

    def _give_up(self, name: str, queue: _StepQueue, count: int, exc: Exception) -> None:
        """Put a line saying what was lost in place of a batch, or stop sending the step."""
        with self._cond:
            in_flight = _count(queue.in_flight or [])
            if queue.lost_marker:
                sys.stderr.write(
                    f"launcher: dropped log batch {queue.seq} of {name} and the rest of its "
                    f"log: {exc}\n"
                )
                self._done_with(queue, in_flight)
                self._queued_bytes -= queue.pending_bytes
                self._queued_lines -= queue.pending_lines
                queue.pending.clear()
                queue.pending_bytes = queue.pending_lines = 0
                queue.abandoned = True
                return
            sys.stderr.write(f"launcher: dropped log batch {queue.seq} of {name}: {exc}\n")
            self._done_with(queue, in_flight)
            lost = f"[{count} log line{'s' if count != 1 else ''} lost: the API did not take them]"
            marker = [Block(now_ms(), lost.encode(), 1)]
            queue.in_flight = marker
            queue.in_flight_bytes = _size(marker)
            self._queued_bytes += queue.in_flight_bytes
            self._queued_lines += 1
            queue.lost_marker = True

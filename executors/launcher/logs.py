"""Turning a step's output into numbered log lines and shipping them in batches."""

from __future__ import annotations

import base64
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .masking import Masker

DEFAULT_MAX_LINE_BYTES = 65536
DEFAULT_MAX_STEP_BYTES = 268435456
LINE_TRUNCATED = b" [line truncated]"

# A line is (milliseconds since the epoch, raw bytes without the newline).
Line = tuple[int, bytes]


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
    """Splits one step's raw output into lines, masking secrets and applying the size caps."""

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
        if self._capped:
            return []
        parts = data.split(b"\n")
        tail = parts.pop()
        out: list[Line] = []
        if parts:
            t = now_ms()
            first_overlong = self._overlong
            if self._partial:
                parts[0] = self._partial if first_overlong else self._partial + parts[0]
            self._partial = b""
            self._overlong = False
            self._emit(parts, t, out, first_overlong)
        self._hold(tail)
        return out

    def finish(self) -> list[Line]:
        """The last, unterminated line, if any."""
        out: list[Line] = []
        if (self._partial or self._overlong) and not self._capped:
            self._emit([self._partial], now_ms(), out, self._overlong)
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

    def _emit(self, parts: list[bytes], t: int, out: list[Line], first_overlong: bool) -> None:
        mask = self.masker
        limit = self.max_line_bytes
        for index, raw in enumerate(parts):
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            # The step cap counts what the step wrote, before masking and cutting.
            self._written += len(raw) + 1
            if self._written > self.max_step_bytes:
                message = f"[log truncated: this step wrote more than {self.max_step_bytes} bytes]"
                out.append((t, message.encode()))
                self._capped = True
                return
            raw = mask(raw)
            if len(raw) > limit or (index == 0 and first_overlong):
                raw = _cut(raw, limit) + LINE_TRUNCATED
            out.append((t, raw))


def encode_line(line: Line) -> dict[str, Any]:
    """The wire form of a line: `m` for UTF-8 text, `b` (base64) for anything else."""
    t, raw = line
    try:
        return {"t": t, "m": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"t": t, "b": base64.b64encode(raw).decode("ascii")}


@dataclass
class _StepQueue:
    pending: deque[Line] = field(default_factory=deque)
    next_line: int = 0
    seq: int = 0
    failures: int = 0
    # Lines in the batch on the wire: a resend carries exactly these, never lines queued since,
    # because the API keeps a seq it already stored and ignores a resend of it.
    in_flight: int = 0
    # The batch on the wire is the line that stands for a batch the API did not take.
    lost_marker: bool = False
    # The API took neither a batch nor its marker: the step's later lines are not sent.
    abandoned: bool = False


# send(step_name, {"seq", "firstLine", "lines"}) raises on failure; an exception with a true
# `permanent` attribute (a 4xx) drops the batch, anything else is resent after a back-off.
Sender = Callable[[str, dict[str, Any]], None]

FIRST_RETRY = 0.5
MAX_RETRY = 10.0


class LogBatcher:
    """Sends each step's lines in numbered batches from a background thread.

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
        max_lines: int = 1000,
        keep_trying_for: Callable[[], float] = lambda: 3600.0,
        first_retry: float = FIRST_RETRY,
    ) -> None:
        self._send = send
        self._first_retry = first_retry
        self._interval = interval
        self._max_lines = max_lines
        self._keep_trying_for = keep_trying_for
        self._steps: dict[str, _StepQueue] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._wake = False
        self._last_send = 0.0
        self._thread = threading.Thread(target=self._run, name="sd-log-batcher", daemon=True)
        self._thread.start()

    def add(self, step: str, lines: list[Line]) -> None:
        """Queue lines of `step`; they are numbered in the order they arrive."""
        if not lines:
            return
        with self._cond:
            queue = self._steps.setdefault(step, _StepQueue())
            if queue.abandoned:
                return
            queue.pending.extend(lines)
            # A full batch goes at once; so does the first line after a quiet spell, so a
            # person watching sees it now rather than at the next tick. A busy step is still
            # sent at most once per interval.
            idle = not self._busy and time.monotonic() - self._last_send >= self._interval
            if len(queue.pending) >= self._max_lines or idle:
                self._wake = True
                self._cond.notify_all()

    def flush(self, step: str | None = None, timeout: float = 30.0) -> bool:
        """Wait until the lines of `step` (or of all steps) are sent; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._wake = True
            self._cond.notify_all()
            while self._has_pending(step) or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Send what is left, then stop the thread."""
        self.flush(None, timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _has_pending(self, step: str | None) -> bool:
        if step is not None:
            queue = self._steps.get(step)
            return bool(queue and queue.pending)
        return any(q.pending for q in self._steps.values())

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._wake and not self._closing:
                    self._cond.wait(self._interval)
                self._wake = False
                if self._closing and not self._has_pending(None):
                    return
                self._busy = True
            try:
                retry_in = self._send_pending()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if retry_in:
                time.sleep(retry_in)

    def _next_batch(self) -> tuple[str, _StepQueue, list[Line]] | None:
        with self._cond:
            for name, queue in self._steps.items():
                if queue.pending:
                    count = queue.in_flight or min(len(queue.pending), self._max_lines)
                    queue.in_flight = count
                    return name, queue, [queue.pending[i] for i in range(count)]
        return None

    def _send_pending(self) -> float:
        """Send every queued batch; when one failed, how long to wait before resending it."""
        while True:
            found = self._next_batch()
            if found is None:
                return 0.0
            name, queue, lines = found
            payload = {
                "seq": queue.seq,
                "firstLine": queue.next_line,
                "lines": [encode_line(line) for line in lines],
            }
            try:
                self._send(name, payload)
                with self._cond:
                    self._last_send = time.monotonic()
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
                self._give_up(name, queue, len(lines), exc)
                continue
            with self._cond:
                for _ in lines:
                    queue.pending.popleft()
                queue.next_line += len(lines)
                queue.seq += 1
                queue.failures = 0
                queue.in_flight = 0
                queue.lost_marker = False

    def _give_up(self, name: str, queue: _StepQueue, count: int, exc: Exception) -> None:
        """Put a line saying what was lost in place of a batch, or stop sending the step."""
        with self._cond:
            for _ in range(count):
                queue.pending.popleft()
            queue.failures = 0
            if queue.lost_marker:
                sys.stderr.write(
                    f"launcher: dropped log batch {queue.seq} of {name} and the rest of its "
                    f"log: {exc}\n"
                )
                queue.pending.clear()
                queue.in_flight = 0
                queue.abandoned = True
                return
            sys.stderr.write(f"launcher: dropped log batch {queue.seq} of {name}: {exc}\n")
            lost = f"[{count} log line{'s' if count != 1 else ''} lost: the API did not take them]"
            queue.pending.appendleft((now_ms(), lost.encode()))
            queue.in_flight = 1
            queue.lost_marker = True

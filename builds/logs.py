"""Step logs: append-only numbered batches in, pages of Screwdriver-shaped lines out."""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count as count_from
from itertools import groupby
from typing import Any, NamedTuple, TypeGuard

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from builds import live
from builds.models import LogBatch, Step
from builds.secrets import masker_for
from screwdriver_site.ids import MAX_INT

# A batch sent as `lines` objects holds at most this many; a packed one (count, data, times)
# at most MAX_PACKED_LINES lines and MAX_BATCH_BYTES bytes once unpacked, newlines counted.
MAX_BATCH_LINES = 1000
MAX_PACKED_LINES = 100_000
MAX_BATCH_BYTES = 8 * 1024 * 1024
LINES_PER_PAGE = 100
MAX_PAGES = 100

# A line: milliseconds since the epoch, raw bytes without the newline.
Line = tuple[int, bytes]
# Runs of lines that share a time: [milliseconds since the epoch, how many lines].
Runs = list[list[int]]


class LogBatchError(ValueError):
    """A log batch that cannot be stored as sent; the message says what to fix."""

    status = 400


class LogBatchConflict(LogBatchError):
    """A resend of a stored seq that holds other lines than the stored batch."""

    status = 409


@dataclass(frozen=True)
class LogPage:
    lines: list[dict[str, Any]]
    more: bool


@dataclass(frozen=True)
class _Batch:
    """A batch as sent, unpacked: the raw lines joined by newlines, and their times."""

    data: bytes
    count: int
    runs: Runs
    # The zlib stream the launcher sent, stored as it is when nothing in it changes.
    packed: bytes | None = None


def _line_bytes(line: Any, index: int) -> tuple[int, bytes]:
    if not isinstance(line, dict):
        raise LogBatchError(f"lines[{index}] must be an object with t and m (or b).")
    t = line.get("t")
    if not _is_time(t):
        raise LogBatchError(f"lines[{index}].t must be an integer timestamp in milliseconds.")
    if "m" in line and isinstance(line["m"], str):
        return t, line["m"].encode("utf-8", "surrogatepass")
    if "b" in line and isinstance(line["b"], str):
        try:
            return t, base64.b64decode(line["b"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise LogBatchError(f"lines[{index}].b is not valid base64.") from exc
    raise LogBatchError(f"lines[{index}] needs a text m or a base64 b.")


def _is_time(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def runs_of(times: list[int]) -> Runs:
    """Per-line times as runs of [t, n]."""
    return [[t, len(list(run))] for t, run in groupby(times)]


def _from_lines(lines: Any) -> _Batch:
    if not isinstance(lines, list) or not lines:
        raise LogBatchError("lines must be a non-empty list.")
    if len(lines) > MAX_BATCH_LINES:
        raise LogBatchError(f"A batch holds at most {MAX_BATCH_LINES} lines.")
    parsed = [_line_bytes(line, i) for i, line in enumerate(lines)]
    data = b"\n".join(raw for _, raw in parsed)
    if data.count(b"\n") != len(parsed) - 1:
        raise LogBatchError("A log line must not contain a newline.")
    return _Batch(data=data, count=len(parsed), runs=runs_of([t for t, _ in parsed]))


def _from_packed(count: Any, data: Any, times: Any) -> _Batch:
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= MAX_PACKED_LINES:
        raise LogBatchError(f"count must be a number of lines from 1 to {MAX_PACKED_LINES}.")
    if not isinstance(data, str):
        raise LogBatchError("data must be the base64 of the zlib of the lines.")
    try:
        packed = base64.b64decode(data, validate=True)
        unpacker = zlib.decompressobj()
        # Unpacking stops at what a batch may hold (its lines and a newline each): a bigger
        # batch is refused without being unpacked whole.
        raw = unpacker.decompress(packed, MAX_BATCH_BYTES)
    except (binascii.Error, ValueError, zlib.error) as exc:
        raise LogBatchError("data must be the base64 of the zlib of the lines.") from exc
    if len(raw) >= MAX_BATCH_BYTES:
        raise LogBatchError(f"A batch holds at most {MAX_BATCH_BYTES} bytes of lines.")
    if not unpacker.eof or unpacker.unused_data:
        raise LogBatchError("data must be one whole zlib stream.")
    held = raw.count(b"\n") + 1
    if held != count:
        raise LogBatchError(f"data holds {held} lines, not count ({count}).")
    if (
        not isinstance(times, list)
        or not all(
            isinstance(run, list) and len(run) == 2 and _is_time(run[0]) and _is_time(run[1])
            for run in times
        )
        or any(n < 1 for _, n in times)
        or sum(n for _, n in times) != count
    ):
        raise LogBatchError("times must be runs [t, n] of count lines in all, each n >= 1.")
    return _Batch(data=raw, count=count, runs=times, packed=packed)


def append_batch(
    *,
    step: Step,
    seq: int,
    first_line: int,
    lines: Any = None,
    count: Any = None,
    data: Any = None,
    times: Any = None,
) -> bool:
    """Store one batch once, masked, in order and within the caps; True if lines were stored.

    The lines come as `lines` objects or packed (`count`, `data`, `times`). A resend of a
    stored seq is accepted and changes nothing, but must hold the lines of the first try: one
    that starts elsewhere or holds more lines is refused rather than taken as stored, so no
    line is dropped without a word. A new batch must follow the stored ones (seq one more than
    the last, firstLine the step's line count). The build's secrets are masked here again, so
    a build token posting directly cannot show them. A batch that would pass the step or build
    cap is cut, with one truncation line; later ones store nothing.
    """
    if seq < 0 or first_line < 0:
        raise LogBatchError("seq and firstLine must not be negative.")
    if (lines is None) == (data is None):
        raise LogBatchError("Send the lines either as lines or packed as count, data and times.")
    batch = _from_lines(lines) if lines is not None else _from_packed(count, data, times)
    masked = masker_for(step.build).block(batch.data)
    try:
        with transaction.atomic():
            # Locked, so that two batches of a step are checked against the count one at a time.
            current = Step.objects.select_for_update().get(pk=step.pk)
            # One query tells a new batch from a resend: the launcher resends only the batch
            # it has on the wire, which is the last one stored when it had landed.
            last = _last_stored(current)
            if last is not None and seq <= last.seq:
                _check_resend(current, _stored(current, seq, last), first_line, batch.count)
                return False
            if current.log_truncated:
                return False  # a cap cut this log: the rest of it is dropped, as the launcher does
            _check_order(current, seq, first_line, last)
            kept, runs, truncated = _within_caps(current, masked, batch)
            if kept is not batch.data or batch.packed is None:
                packed = LogBatch.pack_block(kept)
            else:
                packed = batch.packed  # unchanged: stored as the launcher packed it
            line_count = sum(n for _, n in runs)
            LogBatch.objects.create(
                step=current,
                seq=seq,
                first_line=first_line,
                line_count=line_count,
                data=packed,
                times=runs,
            )
            Step.objects.filter(pk=current.pk).update(
                lines=first_line + line_count,
                log_bytes=F("log_bytes") + len(kept) + 1,
                log_truncated=truncated,
            )
            live.publish_lines(
                build_id=current.build_id,
                step=current.name,
                lines=lambda: _live_lines(first_line, kept, runs),
            )
    except IntegrityError:
        # Another request stored this seq meanwhile: the same as a resend.
        found = (
            LogBatch.objects.filter(step=step, seq=seq)
            .values_list("seq", "first_line", "line_count")
            .first()
        )
        if found is None:
            raise
        _check_resend(step, _Stored(*found), first_line, batch.count)
        return False
    return True


def append_frame(*, build_id: int, frame: Any) -> dict[str, Any]:
    """Store one batch a launcher sent over its log socket, exactly as the log POST stores it
    (`append_batch`); the answer to send back, `stored` or an `error` with the HTTP status
    the POST would have answered."""
    if not isinstance(frame, dict):
        return _frame_error(None, None, 400, "A frame must be a JSON object: a step's log batch.")
    step_name, seq, first_line = frame.get("step"), frame.get("seq"), frame.get("firstLine")
    if not isinstance(step_name, str) or not step_name:
        return _frame_error(None, seq, 400, "A frame needs the name of its step in step.")
    if not (_is_count(seq) and _is_count(first_line)):
        return _frame_error(
            step_name, None, 400, f"seq and firstLine must be whole numbers from 0 to {MAX_INT}."
        )
    step = Step.objects.select_related("build").filter(build_id=build_id, name=step_name).first()
    if step is None:
        return _frame_error(step_name, seq, 404, f"Build {build_id} has no step {step_name}.")
    try:
        created = append_batch(
            step=step,
            seq=seq,
            first_line=first_line,
            lines=frame.get("lines"),
            count=frame.get("count"),
            data=frame.get("data"),
            times=frame.get("times"),
        )
    except LogBatchError as exc:
        return _frame_error(step_name, seq, exc.status, str(exc))
    return {
        "type": "stored",
        "step": step_name,
        "seq": seq,
        "stored": created,
        "live": live.watched(build_id),
    }


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT


def _frame_error(step: str | None, seq: Any, status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "step": step, "seq": seq, "status": status, "message": message}


def _live_lines(first_line: int, data: bytes, runs: Runs) -> list[dict[str, Any]]:
    texts = data.decode("utf-8", "replace").split("\n")
    times = [t for t, n in runs for _ in range(n)]
    return [
        {"n": n, "t": t, "m": m}
        for n, t, m in zip(count_from(first_line), times, texts, strict=False)
    ]


def _check_resend(step: Step, stored: _Stored, first_line: int, count: int) -> None:
    if (stored.first_line, stored.line_count) == (first_line, count):
        return
    if step.log_truncated and stored.first_line == first_line and stored.line_count <= count + 1:
        return  # the stored batch is the one a cap cut
    last = stored.first_line + stored.line_count - 1
    raise LogBatchConflict(
        f"Batch {stored.seq} of step {step.name} is stored with lines {stored.first_line} to "
        f"{last}; a resend must carry the same lines, and new lines need a new seq."
    )


class _Stored(NamedTuple):
    """Where a stored batch stands: its seq and its lines."""

    seq: int
    first_line: int
    line_count: int


def _last_stored(step: Step) -> _Stored | None:
    last = (
        LogBatch.objects.filter(step=step)
        .order_by("-seq")
        .values_list("seq", "first_line", "line_count")
        .first()
    )
    return None if last is None else _Stored(*last)


def _stored(step: Step, seq: int, last: _Stored) -> _Stored:
    """The stored batch `seq` (at most the last one's): the last one needs no query."""
    if seq == last.seq:
        return last
    found = (
        LogBatch.objects.filter(step=step, seq=seq)
        .values_list("seq", "first_line", "line_count")
        .first()
    )
    if found is None:
        # Batches are stored from seq 0 without a gap: only a log pruned since lacks one.
        raise LogBatchConflict(
            f"Batch {seq} of step {step.name} is no longer stored; new lines need seq "
            f"{last.seq + 1}."
        )
    return _Stored(*found)


def _check_order(step: Step, seq: int, first_line: int, last: _Stored | None) -> None:
    expected = 0 if last is None else last.seq + 1
    if seq != expected or first_line != step.lines:
        raise LogBatchConflict(
            f"Step {step.name} expects batch {expected} starting at line {step.lines}, not "
            f"batch {seq} at line {first_line}: send batches in order, without gaps."
        )
    if step.end_time is not None:
        raise LogBatchConflict(f"Step {step.name} has ended: its log takes no new lines.")


def _within_caps(step: Step, data: bytes, batch: _Batch) -> tuple[bytes, Runs, bool]:
    """The lines that fit under the step and build caps (the truncation line ending them when
    a cap cut them), their time runs, and whether a cap cut them."""
    step_cap = settings.SD_LOG_MAX_STEP_BYTES
    build_cap = settings.SD_LOG_MAX_BUILD_BYTES
    build_used = (
        Step.objects.filter(build_id=step.build_id).aggregate(used=Sum("log_bytes"))["used"] or 0
    )
    step_room = step_cap - step.log_bytes
    build_room = build_cap - build_used
    if len(data) + 1 <= min(step_room, build_room):
        return data, batch.runs, False
    times = [t for t, n in batch.runs for _ in range(n)]
    lines = data.split(b"\n")
    for index, raw in enumerate(lines):
        size = len(raw) + 1
        if size > step_room or size > build_room:
            what, cap = ("step", step_cap) if size > step_room else ("build", build_cap)
            at = times[index - 1] if index else times[0]
            kept = [*lines[:index], truncated_line(what, cap)]
            return b"\n".join(kept), runs_of([*times[:index], at]), True
        step_room -= size
        build_room -= size
    return data, batch.runs, False  # not reached: the whole batch fitted


def truncated_line(what: str, cap: int) -> bytes:
    """The line that ends a log a cap cut, worded as the launcher words it."""
    return f"[log truncated: this {what} wrote more than {cap} bytes]".encode()


def read_page(*, step: Step, start: int = 0, pages: int = 10, sort: str = "ascending") -> LogPage:
    """Lines of a step from line `start`, `pages` pages of 100, as Screwdriver's logs endpoint."""
    pages = max(1, min(pages, MAX_PAGES))
    limit = pages * LINES_PER_PAGE
    start = max(0, start)
    total = step.lines
    if sort == "descending":
        # Descending reads backwards from `start` (or from the end when start is past it).
        upper = min(start, total - 1) if start else total - 1
        lower = max(0, upper - limit + 1)
        lines = _collect(step, lower, upper + 1)
        lines.reverse()
        return LogPage(lines=lines, more=lower > 0)
    lines = _collect(step, start, start + limit)
    next_line = start + len(lines)
    finished = step.end_time is not None
    return LogPage(lines=lines, more=next_line < total or not finished)


def _collect(step: Step, lower: int, upper: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if upper <= lower:
        return out
    # The batch holding line `lower` is the last one starting at or before it.
    first = (
        LogBatch.objects.filter(step=step, first_line__lte=lower)
        .order_by("-first_line")
        .values_list("first_line", flat=True)
        .first()
    )
    batches = LogBatch.objects.filter(
        step=step, first_line__gte=first or 0, first_line__lt=upper
    ).order_by("first_line")
    for batch in batches.iterator(chunk_size=20):
        start = max(lower, batch.first_line) - batch.first_line
        stop = min(upper, batch.first_line + batch.line_count) - batch.first_line
        if stop <= start:
            continue
        texts = batch.unpack()[start:stop]
        times = batch.line_times()[start:stop]
        out.extend(
            {
                "n": batch.first_line + start + i,
                "t": t,
                "m": raw.decode("utf-8", "replace"),
                "s": step.name,
            }
            for i, (t, raw) in enumerate(zip(times, texts, strict=True))
        )
    return out


def iter_text(step: Step) -> Iterator[str]:
    """The step's whole log as text, a batch at a time (for downloads)."""
    for batch in LogBatch.objects.filter(step=step).order_by("first_line").iterator(chunk_size=4):
        yield zlib.decompress(bytes(batch.data)).decode("utf-8", "replace") + "\n"

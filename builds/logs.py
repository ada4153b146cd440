"""Step logs: append-only numbered batches in, pages of Screwdriver-shaped lines out."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from builds import live
from builds.models import LogBatch, Step
from builds.secrets import masker_for

MAX_BATCH_LINES = 1000
LINES_PER_PAGE = 100
MAX_PAGES = 100

# A line: milliseconds since the epoch, raw bytes without the newline.
Line = tuple[int, bytes]


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


def _line_bytes(line: Any, index: int) -> tuple[int, bytes]:
    if not isinstance(line, dict):
        raise LogBatchError(f"lines[{index}] must be an object with t and m (or b).")
    t = line.get("t")
    if not isinstance(t, int) or isinstance(t, bool):
        raise LogBatchError(f"lines[{index}].t must be an integer timestamp in milliseconds.")
    if "m" in line and isinstance(line["m"], str):
        return t, line["m"].encode("utf-8", "surrogatepass")
    if "b" in line and isinstance(line["b"], str):
        try:
            return t, base64.b64decode(line["b"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise LogBatchError(f"lines[{index}].b is not valid base64.") from exc
    raise LogBatchError(f"lines[{index}] needs a text m or a base64 b.")


def append_batch(*, step: Step, seq: int, first_line: int, lines: list[Any]) -> bool:
    """Store one batch once, masked, in order and within the caps; True if lines were stored.

    A resend of a stored seq is accepted and changes nothing, but must hold the lines of the
    first try: one that starts elsewhere or holds more lines is refused rather than taken as
    stored, so no line is dropped without a word. A new batch must follow the stored ones
    (seq one more than the last, firstLine the step's line count). The build's secrets are
    masked here again, so a build token posting directly cannot show them. A batch that would
    pass the step or build cap is cut, with one truncation line; later ones store nothing.
    """
    if not isinstance(lines, list) or not lines:
        raise LogBatchError("lines must be a non-empty list.")
    if len(lines) > MAX_BATCH_LINES:
        raise LogBatchError(f"A batch holds at most {MAX_BATCH_LINES} lines.")
    if seq < 0 or first_line < 0:
        raise LogBatchError("seq and firstLine must not be negative.")
    parsed = [_line_bytes(line, i) for i, line in enumerate(lines)]
    for _, raw in parsed:
        if b"\n" in raw:
            raise LogBatchError("A log line must not contain a newline.")
    mask = masker_for(step.build)
    masked = [(t, mask(raw)) for t, raw in parsed]
    try:
        with transaction.atomic():
            # Locked, so that two batches of a step are checked against the count one at a time.
            current = Step.objects.select_for_update().get(pk=step.pk)
            stored = LogBatch.objects.filter(step=current, seq=seq).first()
            if stored is not None:
                _check_resend(current, stored, first_line, len(parsed))
                return False
            if current.log_truncated:
                return False  # a cap cut this log: the rest of it is dropped, as the launcher does
            _check_order(current, seq, first_line)
            kept, truncation = _within_caps(current, masked)
            if truncation is not None:
                kept.append((kept[-1][0] if kept else parsed[0][0], truncation))
            LogBatch.objects.create(
                step=current,
                seq=seq,
                first_line=first_line,
                line_count=len(kept),
                data=LogBatch.pack([raw for _, raw in kept]),
                times=[t for t, _ in kept],
            )
            Step.objects.filter(pk=current.pk).update(
                lines=first_line + len(kept),
                log_bytes=F("log_bytes") + sum(len(raw) + 1 for _, raw in kept),
                log_truncated=truncation is not None,
            )
            live.publish_lines(
                build_id=current.build_id,
                step=current.name,
                lines=[
                    {"n": first_line + i, "t": t, "m": raw.decode("utf-8", "replace")}
                    for i, (t, raw) in enumerate(kept)
                ],
            )
    except IntegrityError:
        # Another request stored this seq meanwhile: the same as a resend.
        stored = LogBatch.objects.filter(step=step, seq=seq).first()
        if stored is None:
            raise
        _check_resend(step, stored, first_line, len(parsed))
        return False
    return True


def _check_resend(step: Step, stored: LogBatch, first_line: int, count: int) -> None:
    if (stored.first_line, stored.line_count) == (first_line, count):
        return
    if step.log_truncated and stored.first_line == first_line and stored.line_count <= count + 1:
        return  # the stored batch is the one a cap cut
    last = stored.first_line + stored.line_count - 1
    raise LogBatchConflict(
        f"Batch {stored.seq} of step {step.name} is stored with lines {stored.first_line} to "
        f"{last}; a resend must carry the same lines, and new lines need a new seq."
    )


def _check_order(step: Step, seq: int, first_line: int) -> None:
    last = LogBatch.objects.filter(step=step).order_by("-seq").values_list("seq", flat=True).first()
    expected = 0 if last is None else last + 1
    if seq != expected or first_line != step.lines:
        raise LogBatchConflict(
            f"Step {step.name} expects batch {expected} starting at line {step.lines}, not "
            f"batch {seq} at line {first_line}: send batches in order, without gaps."
        )
    if step.end_time is not None:
        raise LogBatchConflict(f"Step {step.name} has ended: its log takes no new lines.")


def _within_caps(step: Step, lines: list[Line]) -> tuple[list[Line], bytes | None]:
    """The lines that fit under the step and build caps, and the truncation line if any."""
    step_cap = settings.SD_LOG_MAX_STEP_BYTES
    build_cap = settings.SD_LOG_MAX_BUILD_BYTES
    build_used = (
        Step.objects.filter(build_id=step.build_id).aggregate(used=Sum("log_bytes"))["used"] or 0
    )
    step_room = step_cap - step.log_bytes
    build_room = build_cap - build_used
    for index, (_, raw) in enumerate(lines):
        size = len(raw) + 1
        if size > step_room:
            return lines[:index], truncated_line("step", step_cap)
        if size > build_room:
            return lines[:index], truncated_line("build", build_cap)
        step_room -= size
        build_room -= size
    return lines, None


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
    batches = (
        LogBatch.objects.filter(
            step=step, first_line__gte=lower - MAX_BATCH_LINES + 1, first_line__lt=upper
        )
        # first_line + line_count, not lower - line_count: the columns are unsigned on MySQL.
        .alias(end=F("first_line") + F("line_count"))
        .filter(end__gt=lower)
        .order_by("first_line")
    )
    for batch in batches.iterator(chunk_size=50):
        for offset, raw in enumerate(batch.unpack()):
            n = batch.first_line + offset
            if lower <= n < upper:
                out.append(
                    {
                        "n": n,
                        "t": batch.times[offset],
                        "m": raw.decode("utf-8", "replace"),
                        "s": step.name,
                    }
                )
    return out

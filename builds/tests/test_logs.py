"""Step logs: idempotent numbered batches in, Screwdriver-shaped pages out."""

from __future__ import annotations

import base64
import zlib
from typing import Any

import pytest
from django.utils import timezone

from builds.logs import (
    MAX_BATCH_BYTES,
    MAX_BATCH_LINES,
    MAX_PACKED_LINES,
    LogBatchConflict,
    LogBatchError,
    append_batch,
    iter_text,
    read_page,
)
from builds.models import Build, BuildStatus, LogBatch, Step
from pipelines.models import Event, Job, Pipeline

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000


@pytest.fixture
def step() -> Step:
    pipeline = Pipeline.objects.create(
        name="local/app", scm_uri="local:/srv/app.git:main", checkout_url="/srv/app.git#main"
    )
    job = Job.objects.create(pipeline=pipeline, name="main")
    event = Event.objects.create(pipeline=pipeline, sha="a" * 40, start_from="~commit")
    build = Build.objects.create(
        job=job, event=event, number=1, sha=event.sha, status=BuildStatus.RUNNING
    )
    return Step.objects.create(build=build, position=1, name="test")


def lines(*texts: str, t: int = T0) -> list[dict[str, Any]]:
    return [{"t": t + i, "m": text} for i, text in enumerate(texts)]


def fill(step: Step, total: int, batch_size: int) -> None:
    """Store `total` lines "line N" in batches of `batch_size`."""
    for seq, first in enumerate(range(0, total, batch_size)):
        texts = [f"line {n}" for n in range(first, min(total, first + batch_size))]
        assert append_batch(step=step, seq=seq, first_line=first, lines=lines(*texts, t=T0 + first))
    step.refresh_from_db()


def packed(raw: list[bytes], times: list[list[int]] | None = None) -> dict[str, Any]:
    """A batch as the launcher packs it: the lines' zlib in base64, their times as runs."""
    return {
        "count": len(raw),
        "data": base64.b64encode(zlib.compress(b"\n".join(raw))).decode(),
        "times": times if times is not None else [[T0, len(raw)]],
    }


def numbers(page_lines: list[dict[str, Any]]) -> list[int]:
    return [line["n"] for line in page_lines]


# --- appending ------------------------------------------------------------------------------


def test_a_batch_is_stored_once_and_read_back_in_screwdriver_shape(step: Step) -> None:
    assert append_batch(step=step, seq=0, first_line=0, lines=lines("hello", "world")) is True

    step.refresh_from_db()
    assert read_page(step=step).lines == [
        {"n": 0, "t": T0, "m": "hello", "s": "test"},
        {"n": 1, "t": T0 + 1, "m": "world", "s": "test"},
    ]


def test_a_resent_batch_stores_nothing_new_and_returns_false(step: Step) -> None:
    append_batch(step=step, seq=0, first_line=0, lines=lines("first try"))

    resent = append_batch(step=step, seq=0, first_line=0, lines=lines("first try"))

    assert resent is False
    assert LogBatch.objects.filter(step=step).count() == 1
    step.refresh_from_db()
    assert step.lines == 1
    assert [line["m"] for line in read_page(step=step).lines] == ["first try"]


def test_a_resend_with_other_lines_than_the_stored_batch_is_refused_not_ignored(
    step: Step,
) -> None:
    append_batch(step=step, seq=0, first_line=0, lines=lines("first try"))

    with pytest.raises(LogBatchConflict, match="stored with lines 0 to 0"):
        append_batch(step=step, seq=0, first_line=0, lines=lines("first try", "and more"))
    with pytest.raises(LogBatchConflict, match="new lines need a new seq"):
        append_batch(step=step, seq=0, first_line=1, lines=lines("other"))

    step.refresh_from_db()
    assert step.lines == 1
    assert [line["m"] for line in read_page(step=step).lines] == ["first try"]


def test_a_late_resend_of_an_earlier_batch_than_the_last_is_still_checked_against_it(
    step: Step,
) -> None:
    append_batch(step=step, seq=0, first_line=0, lines=lines("a", "b"))
    append_batch(step=step, seq=1, first_line=2, lines=lines("c"))

    assert append_batch(step=step, seq=0, first_line=0, lines=lines("a", "b")) is False
    with pytest.raises(LogBatchConflict, match="Batch 0 of step test is stored with lines 0 to 1"):
        append_batch(step=step, seq=0, first_line=0, lines=lines("a"))

    step.refresh_from_db()
    assert step.lines == 3
    assert LogBatch.objects.filter(step=step).count() == 2


def test_step_lines_grows_with_each_batch_in_order(step: Step) -> None:
    append_batch(step=step, seq=0, first_line=0, lines=lines("a", "b", "c"))
    step.refresh_from_db()
    assert step.lines == 3

    append_batch(step=step, seq=1, first_line=3, lines=lines("d", "e"))
    step.refresh_from_db()
    assert step.lines == 5
    assert [line["m"] for line in read_page(step=step).lines] == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(
    ("seq", "first_line"),
    [(2, 3), (1, 5), (1, 2), (0, 3)],
    ids=["seq-gap", "line-gap", "overlap", "seq-reused"],
)
def test_a_batch_that_does_not_follow_the_stored_ones_is_refused(
    step: Step, seq: int, first_line: int
) -> None:
    append_batch(step=step, seq=0, first_line=0, lines=lines("a", "b", "c"))

    with pytest.raises(LogBatchConflict):
        append_batch(step=step, seq=seq, first_line=first_line, lines=lines("x"))

    step.refresh_from_db()
    assert step.lines == 3
    assert LogBatch.objects.filter(step=step).count() == 1


def test_the_first_batch_of_a_step_must_be_seq_0_at_line_0(step: Step) -> None:
    with pytest.raises(LogBatchConflict, match="expects batch 0 starting at line 0"):
        append_batch(step=step, seq=3, first_line=0, lines=lines("x"))
    with pytest.raises(LogBatchConflict, match="expects batch 0 starting at line 0"):
        append_batch(step=step, seq=0, first_line=7, lines=lines("x"))


def test_an_ended_step_takes_no_new_batch_but_a_resend_still_answers(step: Step) -> None:
    append_batch(step=step, seq=0, first_line=0, lines=lines("a"))
    Step.objects.filter(pk=step.pk).update(end_time=timezone.now(), code=0)

    assert append_batch(step=step, seq=0, first_line=0, lines=lines("a")) is False
    with pytest.raises(LogBatchConflict, match="has ended"):
        append_batch(step=step, seq=1, first_line=1, lines=lines("late"))


def test_bytes_that_are_not_utf8_come_back_with_replacement_characters(step: Step) -> None:
    raw = b"caf\xe9 \xff\xfe ok"
    append_batch(
        step=step,
        seq=0,
        first_line=0,
        lines=[{"t": T0, "b": base64.b64encode(raw).decode()}, {"t": T0, "m": "plain ✓"}],
    )
    step.refresh_from_db()

    texts = [line["m"] for line in read_page(step=step).lines]

    assert texts == ["caf\ufffd \ufffd\ufffd ok", "plain ✓"]
    # The bytes themselves are kept as sent, so a better decoder could still read them.
    assert LogBatch.objects.get(step=step).unpack()[0] == raw


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([], "non-empty"),
        ([{"t": T0, "m": "x"}] * (MAX_BATCH_LINES + 1), "at most"),
        ([{"t": T0, "m": "two\nlines"}], "newline"),
        ([{"t": T0, "b": base64.b64encode(b"two\nlines").decode()}], "newline"),
        ([{"t": T0, "b": "not base64!"}], "base64"),
        ([{"t": T0, "b": "abc"}], "base64"),
        ([{"m": "no time"}], "timestamp"),
        ([{"t": "soon", "m": "x"}], "timestamp"),
        ([{"t": True, "m": "x"}], "timestamp"),
        ([{"t": T0}], "needs a text m"),
        (["just a string"], "must be an object"),
    ],
)
def test_a_bad_batch_is_refused_and_stores_nothing(
    step: Step, batch: list[Any], message: str
) -> None:
    with pytest.raises(LogBatchError, match=message):
        append_batch(step=step, seq=0, first_line=0, lines=batch)

    assert not LogBatch.objects.filter(step=step).exists()
    step.refresh_from_db()
    assert step.lines == 0


def test_a_batch_of_exactly_the_maximum_size_is_accepted(step: Step) -> None:
    assert append_batch(
        step=step, seq=0, first_line=0, lines=[{"t": T0, "m": "x"}] * MAX_BATCH_LINES
    )


@pytest.mark.parametrize(("seq", "first_line"), [(-1, 0), (0, -1)])
def test_a_negative_seq_or_first_line_is_refused(step: Step, seq: int, first_line: int) -> None:
    with pytest.raises(LogBatchError, match="must not be negative"):
        append_batch(step=step, seq=seq, first_line=first_line, lines=lines("x"))


# --- packed batches -------------------------------------------------------------------------


def test_a_packed_batch_is_stored_as_sent_and_read_back_line_by_line(step: Step) -> None:
    body = packed([b"one", "tw\u00f6".encode(), b"\xff raw", b""], [[T0, 3], [T0 + 5, 1]])

    assert append_batch(step=step, seq=0, first_line=0, **body) is True

    step.refresh_from_db()
    assert step.lines == 4 and step.log_bytes == len(b"one tw\xc3\xb6 \xff raw ") + 1
    assert read_page(step=step).lines == [
        {"n": 0, "t": T0, "m": "one", "s": "test"},
        {"n": 1, "t": T0, "m": "twö", "s": "test"},
        {"n": 2, "t": T0, "m": "\ufffd raw", "s": "test"},
        {"n": 3, "t": T0 + 5, "m": "", "s": "test"},
    ]
    # Nothing in it was masked or cut: the server keeps the launcher's zlib stream.
    stored = LogBatch.objects.get(step=step)
    assert bytes(stored.data) == base64.b64decode(body["data"])
    assert stored.times == [[T0, 3], [T0 + 5, 1]]


def test_packed_and_object_batches_follow_each_other_in_one_step(step: Step) -> None:
    append_batch(step=step, seq=0, first_line=0, lines=lines("a", "b"))
    append_batch(step=step, seq=1, first_line=2, **packed([b"c", b"d", b"e"]))
    append_batch(step=step, seq=2, first_line=5, lines=lines("f"))

    step.refresh_from_db()
    assert [line["m"] for line in read_page(step=step).lines] == list("abcdef")
    assert "".join(iter_text(step)) == "a\nb\nc\nd\ne\nf\n"


def test_a_packed_resend_must_carry_the_same_number_of_lines(step: Step) -> None:
    append_batch(step=step, seq=0, first_line=0, **packed([b"a", b"b"]))

    assert append_batch(step=step, seq=0, first_line=0, **packed([b"a", b"b"])) is False
    with pytest.raises(LogBatchConflict, match="stored with lines 0 to 1"):
        append_batch(step=step, seq=0, first_line=0, **packed([b"a", b"b", b"c"]))


def test_a_page_is_read_from_the_middle_of_a_large_batch(step: Step) -> None:
    raw = [f"line {n}".encode() for n in range(50_000)]
    append_batch(step=step, seq=0, first_line=0, **packed(raw, [[T0, 20_000], [T0 + 1, 30_000]]))
    append_batch(step=step, seq=1, first_line=50_000, **packed([b"after"]))
    step.refresh_from_db()

    page = read_page(step=step, start=19_950, pages=1)
    back = read_page(step=step, start=50_000, pages=1, sort="descending")

    assert numbers(page.lines) == list(range(19_950, 20_050))
    assert [line["t"] for line in page.lines[49:51]] == [T0, T0 + 1]
    assert page.lines[0]["m"] == "line 19950"
    assert numbers(back.lines) == list(range(50_000, 49_900, -1))
    assert [line["m"] for line in back.lines[:2]] == ["after", "line 49999"]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "either as lines or packed"),
        ({**packed([b"x"]), "lines": [{"t": T0, "m": "x"}]}, "either as lines or packed"),
        ({**packed([b"x"]), "count": 0}, "count must be"),
        ({**packed([b"x"]), "count": MAX_PACKED_LINES + 1}, "count must be"),
        ({**packed([b"x"]), "count": True}, "count must be"),
        ({**packed([b"x"]), "data": 7}, "base64 of the zlib"),
        ({**packed([b"x"]), "data": "not base64!"}, "base64 of the zlib"),
        ({**packed([b"x"]), "data": _b64(b"not zlib")}, "base64 of the zlib"),
        ({**packed([b"x"]), "data": _b64(zlib.compress(b"x")[:-3])}, "one whole zlib stream"),
        ({**packed([b"x"]), "data": _b64(zlib.compress(b"x") + b"more")}, "one whole zlib"),
        ({**packed([b"x"]), "count": 2, "times": [[T0, 2]]}, "holds 1 lines, not count"),
        ({**packed([b"x"]), "times": [[T0, 2]]}, "times must be runs"),
        ({**packed([b"x"]), "times": [[T0, 0], [T0, 1]]}, "times must be runs"),
        ({**packed([b"x"]), "times": [[T0]]}, "times must be runs"),
        ({**packed([b"x"]), "times": [["soon", 1]]}, "times must be runs"),
        ({**packed([b"x"]), "times": {"t": T0}}, "times must be runs"),
        (packed([b"x" * MAX_BATCH_BYTES]), "at most"),
    ],
)
def test_a_bad_packed_batch_is_refused_and_stores_nothing(
    step: Step, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(LogBatchError, match=message):
        append_batch(step=step, seq=0, first_line=0, **body)

    assert not LogBatch.objects.filter(step=step).exists()


# --- reading --------------------------------------------------------------------------------


def test_ascending_pages_follow_each_other_and_say_when_there_is_more(step: Step) -> None:
    fill(step, total=250, batch_size=40)
    Step.objects.filter(pk=step.pk).update(end_time=timezone.now())
    step.refresh_from_db()

    first = read_page(step=step, start=0, pages=1)
    second = read_page(step=step, start=100, pages=1)
    last = read_page(step=step, start=200, pages=1)
    beyond = read_page(step=step, start=250, pages=1)

    assert numbers(first.lines) == list(range(100)) and first.more
    assert numbers(second.lines) == list(range(100, 200)) and second.more
    assert numbers(last.lines) == list(range(200, 250)) and not last.more
    assert beyond.lines == [] and not beyond.more
    assert [line["m"] for line in last.lines[:2]] == ["line 200", "line 201"]
    assert [line["t"] for line in last.lines[:2]] == [T0 + 200, T0 + 201]


def test_a_running_step_always_has_more_to_come(step: Step) -> None:
    fill(step, total=10, batch_size=10)

    page = read_page(step=step, start=0)

    assert numbers(page.lines) == list(range(10))
    assert page.more


def test_reading_from_the_middle_of_a_batch_starts_at_that_line(step: Step) -> None:
    fill(step, total=90, batch_size=30)

    page = read_page(step=step, start=45, pages=1)

    assert numbers(page.lines) == list(range(45, 90))
    assert page.lines[0]["m"] == "line 45"


def test_descending_reads_backwards_from_the_end(step: Step) -> None:
    fill(step, total=250, batch_size=40)

    page = read_page(step=step, pages=1, sort="descending")

    assert numbers(page.lines) == list(range(249, 149, -1))
    assert page.more


def test_descending_from_a_line_reads_backwards_from_that_line(step: Step) -> None:
    fill(step, total=250, batch_size=40)

    page = read_page(step=step, start=120, pages=1, sort="descending")
    rest = read_page(step=step, start=20, pages=1, sort="descending")

    assert numbers(page.lines) == list(range(120, 20, -1)) and page.more
    assert numbers(rest.lines) == list(range(20, -1, -1)) and not rest.more


def test_a_step_without_logs_reads_as_an_empty_page(step: Step) -> None:
    assert read_page(step=step).lines == []
    assert read_page(step=step, sort="descending").lines == []

"""Byte ranges, ETags and zips written as they are sent."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator
from datetime import datetime

import pytest

from screwdriver_site.streaming import (
    ByteRange,
    Primed,
    RangeNotSatisfiable,
    etag_in,
    requested_range,
)
from screwdriver_site.zipstream import ZipMember, zip_stream


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", ByteRange(0, 1, 10)),
        ("bytes=2-5", ByteRange(2, 6, 10)),
        ("bytes=2-", ByteRange(2, 10, 10)),
        ("bytes=-3", ByteRange(7, 10, 10)),
        ("bytes=-30", ByteRange(0, 10, 10)),
        ("bytes=8-400", ByteRange(8, 10, 10)),
        (" bytes=1-2 ", ByteRange(1, 3, 10)),
        # Not understood, so ignored (RFC 9110): the whole file.
        ("bytes=5-2", None),
        ("bytes=-", None),
        ("bytes=0-1,3-4", None),
        ("lines=0-1", None),
        ("bytes=a-b", None),
    ],
)
def test_a_range_header_names_one_range_or_the_whole(
    header: str | None, expected: ByteRange | None
) -> None:
    assert requested_range(header, 10) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=-1", 0)])
def test_a_range_without_any_byte_is_not_satisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        requested_range(header, size)


def test_a_range_says_its_content_range() -> None:
    assert ByteRange(2, 6, 10).content_range == "bytes 2-5/10"
    assert ByteRange(2, 6, 10).length == 4


def test_if_none_match_compares_etags_weakly_and_takes_a_star() -> None:
    assert etag_in('"a", W/"b"', '"b"')
    assert etag_in("*", '"b"')
    assert not etag_in('"a"', '"b"')
    assert not etag_in(None, '"b"')


NOW = datetime(2026, 1, 2, 3, 4, 6)


def chunks_of(data: bytes) -> Iterator[bytes]:
    return (data[i : i + 5] for i in range(0, len(data), 5))


def test_a_zip_holds_each_member_whole_stored_or_deflated() -> None:
    members = [
        ZipMember("a.txt", 12, NOW, lambda: chunks_of(b"hello hello!"), compress=True),
        ZipMember("d/é.bin", 3, NOW, lambda: chunks_of(b"\0\1\2")),
        ZipMember("empty", 0, NOW, lambda: iter(())),
    ]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zip_stream(members))))
    assert archive.testzip() is None
    assert [(i.filename, i.compress_type) for i in archive.infolist()] == [
        ("a.txt", zipfile.ZIP_DEFLATED),
        ("d/é.bin", zipfile.ZIP_STORED),
        ("empty", zipfile.ZIP_STORED),
    ]
    assert archive.read("a.txt") == b"hello hello!"
    assert archive.getinfo("a.txt").date_time == (2026, 1, 2, 3, 4, 6)


def test_a_member_the_storage_lost_is_left_out() -> None:
    def gone() -> Iterator[bytes]:
        raise FileNotFoundError("artifacts/1/gone")

    members = [ZipMember("gone", 3, NOW, gone), ZipMember("kept", 1, NOW, lambda: iter([b"k"]))]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zip_stream(members))))
    assert archive.namelist() == ["kept"]


def test_a_member_of_4_gib_or_more_gets_zip64_records() -> None:
    # Its recorded size decides before its bytes are read; the bytes here are few.
    member = ZipMember("huge.bin", 5 * 2**30, NOW, lambda: iter([b"x" * 10]))
    data = b"".join(zip_stream([member]))
    extra_length = struct.unpack("<H", data[28:30])[0]
    name_end = 30 + len("huge.bin")
    assert struct.unpack("<H", data[name_end : name_end + 2])[0] == 0x0001  # zip64 extra
    assert extra_length >= 20
    assert zipfile.ZipFile(io.BytesIO(data)).read("huge.bin") == b"x" * 10


def test_a_zip_leaves_as_it_is_written_not_at_the_end() -> None:
    sent: list[str] = []

    def member(name: str) -> ZipMember:
        def chunks() -> Iterator[bytes]:
            sent.append(f"read {name}")
            yield b"data of " + name.encode()

        return ZipMember(name, 8 + len(name), NOW, chunks)

    stream = zip_stream([member("one"), member("two")])
    first = next(stream)
    assert first.startswith(b"PK\x03\x04") and sent == ["read one"]


def test_a_primed_stream_reads_its_first_chunk_at_once_and_closes_its_source() -> None:
    events: list[str] = []

    def source() -> Iterator[bytes]:
        try:
            events.append("opened")
            yield b"one"
            yield b"two"
        finally:
            events.append("closed")

    stream = Primed(source())
    assert events == ["opened"]
    assert next(stream) == b"one"
    stream.close()
    assert events == ["opened", "closed"]
    assert list(Primed(source())) == [b"one", b"two"]


def test_a_primed_stream_of_a_missing_file_fails_before_it_is_answered() -> None:
    def missing() -> Iterator[bytes]:
        raise FileNotFoundError("artifacts/1/a.txt")
        yield b""

    with pytest.raises(FileNotFoundError):
        Primed(missing())

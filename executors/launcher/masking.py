"""Hiding secret values, and their common encodings, in log lines and in meta.

Both the launcher and the server mask with this module (the server again, so that a build
token posting logs or meta directly cannot get around the launcher); it needs the standard
library only.

What is masked, line by line (output is split into lines before masking):

- every non-empty secret value, wherever it stands whole in a line (each line of a multi-line
  secret counts as a value of its own);
- for values of at least MIN_FORM_BYTES bytes, also their encodings: base64 (standard and
  url-safe, with and without padding, and the characters a value fixes at each of the three
  alignments it can have inside a longer base64 stream), URL-encoding (`quote` with and without
  `/` kept, `quote_plus`, upper- or lower-case hex) and JSON string escaping (with and without
  `ensure_ascii`);
- for those same forms, the pieces a line break cut them into: a line that ends with the first
  `k` bytes of a form, starts with its last `k` bytes, or is wholly a piece of it, has that part
  replaced, where `k` is at least `min(SPLIT_PIECE_CAP, ceil(len(form) / 2))` bytes.

Why the last rule is enough for two consecutive lines: a form of `n` bytes printed across a
line break is a tail of `i` bytes and a head of `n - i` bytes; one of them is at least
`ceil(n / 2)` bytes long, so it is masked, and the concatenation of the two stored lines no
longer holds the form. Every rule runs until nothing changes, and a replacement always turns
at least one byte other than `*` into `****`, so it ends and no unmasked occurrence is left;
the only pieces kept are runs of `*` alone, which tell nothing. A form split over three or
more lines is masked piece by piece only where a piece reaches the length above (`base64`
wraps its output at 76 characters: every wrapped line of a long secret is masked).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from operator import itemgetter
from typing import Any
from urllib.parse import quote, quote_plus

MASK = b"****"
MASK_TEXT = MASK.decode()
# Shorter values are masked only where they stand whole: their encodings and halves are so
# short that masking them would hide ordinary output.
MIN_FORM_BYTES = 8
# A piece of at least this many bytes of a form at a line's edge is masked (less for short
# forms: half of them), so that the pieces of a wrapped base64 line are caught too.
SPLIT_PIECE_CAP = 16
_LOWER_HEX = re.compile(rb"%[0-9A-F]{2}")


def _to_bytes(value: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _to_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")


def _base64_forms(raw: bytes) -> set[bytes]:
    out: set[bytes] = set()
    full = base64.b64encode(raw)
    out.update({full, full.rstrip(b"=")})
    bits = 8 * len(raw)
    for offset in range(3):
        # Inside a longer stream the value starts at bit 8 * offset; keep only the characters
        # (6 bits each) that lie wholly within the value's own bits.
        stream = base64.b64encode(b"\0" * offset + raw)
        first = -(-8 * offset // 6)
        last = (8 * offset + bits) // 6
        out.add(stream[first:last])
    return out | {form.translate(bytes.maketrans(b"+/", b"-_")) for form in out}


def forms_of(secret: str) -> set[bytes]:
    """The byte strings that show `secret` in a line: the value, its lines and encodings."""
    if not secret:
        return set()
    raw = _to_bytes(secret)
    out = {raw, *(_to_bytes(part) for part in secret.splitlines() if part)}
    if len(raw) >= MIN_FORM_BYTES:
        text = _to_text(raw)
        encoded = {quote(text, safe=""), quote(text), quote_plus(text)}
        out.update(e.encode("ascii") for e in encoded)
        out.update(_LOWER_HEX.sub(lambda m: m.group().lower(), e.encode("ascii")) for e in encoded)
        out.update(_to_bytes(json.dumps(text, ensure_ascii=a)[1:-1]) for a in (True, False))
        out.update(_base64_forms(raw))
    # A line never holds a newline; a value made of `*` alone cannot be told from the mask.
    return {f for f in out if f and b"\n" not in f and f.strip(b"*")}


def _split_threshold(form: bytes) -> int:
    return min(SPLIT_PIECE_CAP, -(-len(form) // 2))


def _alternation(values: Iterable[bytes]) -> re.Pattern[bytes] | None:
    ordered = sorted(set(values), key=lambda v: (-len(v), v))
    return re.compile(b"|".join(re.escape(v) for v in ordered)) if ordered else None


class Masker:
    """Replaces secret values and their encodings in raw output lines with `****`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.values = tuple(secrets)
        whole: set[bytes] = set()
        split: set[bytes] = set()
        for secret in self.values:
            found = forms_of(secret)
            whole |= found
            if len(_to_bytes(secret)) >= MIN_FORM_BYTES:
                split |= {f for f in found if len(f) >= MIN_FORM_BYTES}
        self.longest = max((len(f) for f in whole), default=0)
        self._whole = _alternation(whole)
        # Pieces at line edges: (form, threshold) pairs, with seeds that find candidates fast.
        self._split = sorted(((f, _split_threshold(f)) for f in split), key=lambda p: -len(p[0]))
        self._heads = _alternation(f[:t] for f, t in self._split)
        self._tails = _alternation(f[-t:] for f, t in self._split)
        self._haystack = b"\n".join(f for f, _ in self._split)
        self._shortest_piece = min((t for _, t in self._split), default=0)
        self._longest_split = max((len(f) for f, _ in self._split), default=0)
        # What a block is searched for: a line holding none of these is left as it is. A form
        # that can be cut holds its own first piece, so only the others stand for themselves.
        pieces = {f[:t] for f, t in self._split} | {f[-t:] for f, t in self._split}
        cut = {f for f, _ in self._split}
        self._seeds = sorted(pieces | (whole - cut))
        # Every run of `_shortest_piece` bytes of a form: a line that is wholly a piece of one
        # starts with such a run.
        q = self._shortest_piece
        self._grams = {f[i : i + q] for f, _ in self._split for i in range(len(f) - q + 1)}

    def __bool__(self) -> bool:
        return self._whole is not None

    def adding(self, secrets: Iterable[str]) -> Masker:
        """A masker of these values as well (one learned during the build: a credential)."""
        return Masker([*self.values, *secrets])

    def __call__(self, raw: bytes) -> bytes:
        """One output line (no newline in it) with every secret, whole or cut, replaced."""
        if self._whole is None:
            return raw
        if self._split and self._is_piece(raw):
            return MASK
        while True:
            raw = self._mask_whole(raw)
            masked = self._mask_tail(raw)
            masked = self._mask_head(masked)
            if masked == raw:
                return raw
            raw = masked

    def block(self, data: bytes) -> bytes:
        """`data`, lines joined by newlines, with each line masked as a call masks it.

        Returns `data` itself when no line changed.
        """
        if self._whole is None or not data:
            return data
        suspects = self._suspect_lines(data)
        if not suspects:
            return data
        lines = data.split(b"\n")
        changed = False
        for index in suspects:
            masked = self(lines[index])
            if masked != lines[index]:
                lines[index] = masked
                changed = True
        return b"\n".join(lines) if changed else data

    def lines(self, data: bytes) -> list[bytes]:
        """The lines of `data` (lines joined by newlines), each masked as a call masks it."""
        lines = data.split(b"\n")
        if self._whole is not None and data:
            for index in self._suspect_lines(data):
                lines[index] = self(lines[index])
        return lines

    def _suspect_lines(self, data: bytes) -> list[int]:
        """The numbers of the lines of `data` that a rule could change; the others it cannot.

        A line changes only if it holds a whole form, the first or last piece of a form that a
        cut rule looks for (none holds a newline, so each lies within one line), or is wholly
        a piece of a form. `bytes.find` looks for each of them: far faster than one regular
        expression of them all, whose alternatives are tried at every position.
        """
        hits: list[int] = []
        for seed in self._seeds:
            at = data.find(seed)
            while at >= 0:
                hits.append(at)
                at = data.find(seed, at + 1)
        found: set[int] = set()
        line, last = 0, 0
        for at in sorted(hits):
            line += data.count(b"\n", last, at)
            last = at
            found.add(line)
        # A piece starts with a run of q bytes of its form: most blocks hold no line that does.
        # (Taking the block apart for this check, in C, costs less than any search of its bytes
        # for the runs.)
        q = self._shortest_piece
        if self._grams:
            lines = data.split(b"\n")
            if not self._grams.isdisjoint(map(itemgetter(slice(0, q)), lines)):
                low, high, grams = q, self._longest_split, self._grams
                found.update(
                    index
                    for index, raw in enumerate(lines)
                    if low <= len(raw) <= high and raw[:q] in grams
                )
        return sorted(found)

    def text(self, text: str) -> str:
        """`text` (any number of lines) masked line by line."""
        if self._whole is None:
            return text
        return _to_text(b"\n".join(self(line) for line in _to_bytes(text).split(b"\n")))

    def meta(self, value: Any) -> Any:
        """A copy of a meta value with secrets masked in its keys, strings and numbers."""
        if self._whole is None:
            return value
        if isinstance(value, dict):
            return {self.text(str(k)): self.meta(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.meta(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            shown = json.dumps(value)
            return MASK_TEXT if self.text(shown) != shown else value
        return value

    def _is_piece(self, raw: bytes) -> bool:
        # A whole line that is a long enough piece of a form: a middle line of a wrapped one.
        if not self._shortest_piece <= len(raw) <= self._longest_split or not raw.strip(b"*"):
            return False
        if raw not in self._haystack:
            return False
        return any(len(raw) >= t and raw in f for f, t in self._split)

    def _mask_whole(self, raw: bytes) -> bytes:
        assert self._whole is not None
        # Each pass turns bytes other than `*` into the mask, so this ends; a second pass is
        # needed only when a value holding `*` reappears next to a mask.
        while True:
            raw, count = self._whole.subn(MASK, raw)
            if not count or not self._whole.search(raw):
                return raw

    def _mask_tail(self, raw: bytes) -> bytes:
        """`raw` with its longest tail that begins a form (long enough) replaced."""
        if self._heads is None:
            return raw
        start = max(0, len(raw) - self._longest_split + 1)
        found = self._heads.search(raw, start)
        while found is not None:
            tail = raw[found.start() :]
            if tail.strip(b"*") and any(
                len(tail) >= t and len(tail) < len(f) and f.startswith(tail) for f, t in self._split
            ):
                return raw[: found.start()] + MASK
            found = self._heads.search(raw, found.start() + 1)
        return raw

    def _mask_head(self, raw: bytes) -> bytes:
        """`raw` with its longest head that ends a form (long enough) replaced."""
        if self._tails is None:
            return raw
        window = raw[: self._longest_split - 1]
        ends: list[int] = []
        found = self._tails.search(window)
        while found is not None:
            ends.extend(found.start() + t for _, t in self._split)
            found = self._tails.search(window, found.start() + 1)
        for end in sorted({e for e in ends if e <= len(window)}, reverse=True):
            head = raw[:end]
            if head.strip(b"*") and any(
                len(head) >= t and len(head) < len(f) and f.endswith(head) for f, t in self._split
            ):
                return MASK + raw[end:]
        return raw

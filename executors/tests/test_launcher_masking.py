"""Masking secrets and their encodings: whole, cut over two lines, and in meta.

The encodings are derived here independently of the masker: base64 from the standard
library with the bytes around the secret varied, URL and JSON forms from urllib and json.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import string
from urllib.parse import quote, quote_plus

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executors.launcher.logs import StepOutput
from executors.launcher.masking import MIN_FORM_BYTES, Masker
from executors.tests.secret_forms import base64_cores

EXAMPLES = int(os.environ.get("SD_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

ALPHABETS = {
    "letters": string.ascii_letters,
    "digits": string.digits,
    "punctuation": string.punctuation + " ",
    "non-ascii": "éüßçø€日本語😀ñ",
    "mixed": string.ascii_letters + string.digits + "/+=%&\"\\'<>é€ ",
}


def secrets(min_size: int = MIN_FORM_BYTES, max_size: int = 40) -> st.SearchStrategy[str]:
    return st.sampled_from(sorted(ALPHABETS)).flatmap(
        lambda name: st.text(ALPHABETS[name], min_size=min_size, max_size=max_size).filter(
            lambda s: min_size <= len(s.encode()) <= max_size and s.strip("*")
        )
    )


def printed(secret: str) -> dict[str, str]:
    """What a step prints for each encoding, by name."""
    raw = secret.encode()
    out = {
        "literal": secret,
        "quote": quote(secret, safe=""),
        "quote-slash": quote(secret),
        "quote_plus": quote_plus(secret),
        "json": json.dumps(secret)[1:-1],
        "json-utf8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "base64": base64.b64encode(raw).decode(),
        "base64-unpadded": base64.b64encode(raw).decode().rstrip("="),
        "base64-url": base64.urlsafe_b64encode(raw).decode(),
    }
    for offset in (1, 2):
        out[f"base64-at-{offset}"] = base64.b64encode(b"\x07" * offset + raw).decode()
        out[f"base64-url-at-{offset}"] = base64.urlsafe_b64encode(b"\xfb" * offset + raw).decode()
    return out


def needles(secret: str) -> set[str]:
    """What must never be seen: the value, its text encodings, and the base64 characters
    that the value alone fixes, at each alignment, standard and url-safe."""
    found = {v for k, v in printed(secret).items() if not k.startswith("base64") and len(v) >= 1}
    found |= base64_cores(secret)
    return {n for n in found if n}


def leaks(text: str, secret: str) -> list[str]:
    return [n for n in _needles(secret) if n in text]


@functools.lru_cache(maxsize=64)
def _needles(secret: str) -> frozenset[str]:
    return frozenset(needles(secret))


@FUZZ
@given(secret=secrets())
def test_a_secret_and_its_encodings_printed_whole_are_masked(secret: str) -> None:
    mask = Masker([secret])
    for name, form in printed(secret).items():
        line = mask(f"before {form} after".encode()).decode()
        assert not leaks(line, secret), (name, line)


@FUZZ
@given(secret=secrets())
def test_a_secret_or_encoding_cut_anywhere_over_two_lines_is_masked(secret: str) -> None:
    mask = Masker([secret])
    for name, form in printed(secret).items():
        for cut in range(1, len(form)):
            first = mask(f"before {form[:cut]}".encode()).decode()
            second = mask(f"{form[cut:]} after".encode()).decode()
            for joined in (first + second, first + "\n" + second):
                assert not leaks(joined, secret), (name, cut, first, second)


@FUZZ
@given(secret=secrets(), chunk=st.integers(1, 7))
def test_step_output_fed_in_chunks_masks_a_secret_cut_over_two_lines(
    secret: str, chunk: int
) -> None:
    form = printed(secret)["base64"]
    out = StepOutput(Masker([secret]))
    for cut in range(1, len(form)):
        data = f"x {form[:cut]}\n{form[cut:]} y\n".encode()
        lines = []
        for i in range(0, len(data), chunk):
            lines += out.feed(data[i : i + chunk])
        text = "".join(raw.decode() for _, raw in lines)
        assert len(lines) == 2 and not leaks(text, secret), (cut, lines)


@FUZZ
@given(secret=secrets())
def test_meta_holding_a_secret_in_keys_values_and_lists_is_masked(secret: str) -> None:
    forms = printed(secret)
    meta = {
        "leaked": secret,
        "nested": {"list": [f"x{v}y" for v in forms.values()], secret: 1},
        "lines": f"a\n{secret[: len(secret) // 2]}\n{secret[len(secret) // 2 :]}\nb",
    }
    masked = Masker([secret]).meta(meta)
    for ensure_ascii in (True, False):
        shown = json.dumps(masked, ensure_ascii=ensure_ascii)
        assert not leaks(shown, secret), shown


def test_a_number_holding_a_secret_is_masked_in_meta() -> None:
    assert Masker(["12345678"]).meta({"n": 9123456789, "ok": 7, "b": True}) == {
        "n": "****",
        "ok": 7,
        "b": True,
    }


@FUZZ
@given(secret=secrets(min_size=1, max_size=MIN_FORM_BYTES - 1))
def test_a_short_secret_is_masked_where_it_stands_whole_only(secret: str) -> None:
    mask = Masker([secret])
    assert secret not in mask(f"a {secret} b".encode()).decode()
    # Its encodings are left alone: masking them would hide ordinary output.
    encoded = base64.b64encode(b"\x00" + secret.encode())
    assert mask(encoded) == encoded or secret.encode() in encoded


def test_a_base64_secret_wrapped_at_76_characters_is_masked_on_every_line() -> None:
    secret = "k" * 20 + "-very-long-deploy-key-" * 6
    wrapped = base64.encodebytes(secret.encode()).decode().splitlines()
    assert len(wrapped) > 2
    mask = Masker([secret])
    lines = [mask(line.encode()).decode() for line in wrapped]
    assert not leaks("".join(lines), secret)
    assert all(line.startswith("****") or line.endswith("****") for line in lines)


def test_ordinary_lines_are_left_alone() -> None:
    mask = Masker(["correct horse battery staple"])
    for line in ["", "Compiling...", "correct", "horse battery", "done in 3s"]:
        assert mask(line.encode()) == line.encode()


def test_a_secret_ending_in_stars_does_not_reappear_next_to_the_mask() -> None:
    secret = "pass-word**"
    masked = Masker([secret])(b"pass-word" + secret.encode()).decode()
    assert secret not in masked and "pass-word" not in masked


@FUZZ
@given(
    secret_list=st.lists(secrets(min_size=1), min_size=1, max_size=3),
    picks=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 99)), max_size=30
    ),
    filler=st.text(string.ascii_letters + " *=%\n", max_size=60),
)
def test_a_block_of_lines_is_masked_exactly_as_each_line_alone(
    secret_list: list[str], picks: list[tuple[int, int, int]], filler: str
) -> None:
    # Lines made of pieces of every form of the secrets, cut anywhere, between ordinary text:
    # whatever the block search skips must be what a line-by-line pass leaves alone.
    mask = Masker(secret_list)
    forms = sorted({f for s in secret_list for f in printed(s).values()})
    text = filler
    for start, stop, which in picks:
        form = forms[which % len(forms)]
        text += form[min(start, stop) : max(start, stop)] + ("\n" if which % 3 == 0 else " ")
    lines = text.encode().split(b"\n")

    one_by_one = [mask(line) for line in lines]
    assert mask.block(b"\n".join(lines)) == b"\n".join(one_by_one)
    assert mask.lines(b"\n".join(lines)) == one_by_one


def test_a_block_with_nothing_to_mask_comes_back_as_the_same_object() -> None:
    data = b"\n".join(f"line {n}".encode() for n in range(1000))

    assert Masker(["a-secret-value"]).block(data) is data
    assert Masker([]).block(data) is data

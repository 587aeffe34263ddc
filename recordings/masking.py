"""Mask spoken phone and ID-card numbers in transcripts (Chinese text).

Recognisers write digits as Arabic digits, Chinese numerals (一三八零…, 〇, 幺 for 1 in
phone numbers) or a mix, often with spaces between words: "一 三 八 零零 …". A run of
digits, allowing spaces and dashes between them, is a number; a run long enough to be a
phone, ID-card or bank-card number is replaced:

- 11 digits starting with 1 (mobile): ``138****0001`` (the usual display form);
- 15 digits, or 17 digits followed by a check digit or X (ID card): the 6-digit region code
  is kept, the birth date and the rest masked: ``330502************``;
- any other run of 7 or more digits (landline, extension, bank card): all but the last 4.

Shorter runs (dates such as 二零二四, house numbers, counts) are left alone. The masked
number is written with Arabic digits.
"""

from __future__ import annotations

import re

_DIGITS = {
    **{str(d): str(d) for d in range(10)},
    **{chr(0xFF10 + d): str(d) for d in range(10)},  # full-width ０-９
    "零": "0",
    "〇": "0",
    "○": "0",
    "洞": "0",
    "一": "1",
    "幺": "1",
    "么": "1",
    "二": "2",
    "两": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "拐": "7",
    "八": "8",
    "九": "9",
    "勾": "9",
}
_DIGIT_CLASS = "".join(sorted(_DIGITS))
_SEP = r"[ \t\u3000\-–—_.·、,，]*"
# The check character of an 18-character ID card when it is X: written or spoken (叉, 艾克斯).
_X = r"(?:[Xx×Ｘｘ]|叉|艾克斯)"
_RUN = re.compile(rf"[{_DIGIT_CLASS}](?:{_SEP}[{_DIGIT_CLASS}])*(?:{_SEP}(?P<x>{_X}))?")

MIN_DIGITS = 7


def _masked(digits: str, has_x: bool) -> str | None:
    n = len(digits)
    if has_x and n == 17:
        return digits[:6] + "*" * 12
    if n in (15, 18):
        return digits[:6] + "*" * (n - 6)
    if n == 11 and digits[0] == "1":
        return digits[:3] + "****" + digits[7:]
    if n >= MIN_DIGITS:
        return "*" * (n - 4) + digits[-4:]
    return None


def mask_numbers(text: str) -> str:
    """``text`` with phone, ID-card and other long spoken numbers masked."""

    def replace(m: re.Match[str]) -> str:
        run = m.group(0)
        x = m.group("x")
        body = run[: m.start("x") - m.start()] if x else run
        digits = "".join(_DIGITS[c] for c in body if c in _DIGITS)
        masked = _masked(digits, bool(x))
        if masked is None:
            return run
        if x and len(digits) != 17:
            # The X was not an ID check digit: mask the digits, keep the word after them.
            return masked + run[len(body.rstrip()) :]
        return masked

    return _RUN.sub(replace, text)


def contains_long_number(text: str) -> bool:
    """True when ``text`` still holds a spoken number long enough to identify someone."""
    for m in _RUN.finditer(text):
        digits = [c for c in m.group(0) if c in _DIGITS]
        if len(digits) >= MIN_DIGITS:
            return True
    return False


def mask_sequence(texts: list[str]) -> list[str]:
    """Mask a speaker's consecutive segments as one text.

    A number read out with a pause in the middle ("一三八零零零零 … 零零零一") ends up in two
    segments; each half alone is too short to be caught. A number crossing a boundary has its
    digits masked entirely in every segment it touches.
    """
    if not texts:
        return []
    starts = []
    pos = 0
    for t in texts:
        starts.append(pos)
        pos += len(t) + 1
    joined = " ".join(texts)
    edits: list[list[tuple[int, int, str]]] = [[] for _ in texts]

    def seg_of(i: int) -> int:
        k = 0
        for j, s in enumerate(starts):
            if s <= i:
                k = j
        return k

    for m in _RUN.finditer(joined):
        x = m.group("x")
        body_end = m.start("x") if x else m.end()
        body = joined[m.start() : body_end]
        digits = "".join(_DIGITS[c] for c in body if c in _DIGITS)
        masked = _masked(digits, bool(x))
        if masked is None:
            continue
        first, last = seg_of(m.start()), seg_of(m.end() - 1)
        if first == last:
            end = m.end() if (x and len(digits) == 17) else m.start() + len(body.rstrip())
            edits[first].append((m.start() - starts[first], end - starts[first], masked))
            continue
        for k in range(first, last + 1):
            lo = max(m.start(), starts[k]) - starts[k]
            hi = min(m.end(), starts[k] + len(texts[k])) - starts[k]
            piece = texts[k][lo:hi]
            edits[k].append((lo, hi, "".join("*" if c in _DIGITS else c for c in piece)))
    out = []
    for text, seg_edits in zip(texts, edits, strict=True):
        for lo, hi, rep in sorted(seg_edits, reverse=True):
            text = text[:lo] + rep + text[hi:]
        out.append(text)
    return out

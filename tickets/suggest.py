"""A ticket drafted from the call: suggestions for the ticket form, from the citizen's words.

Everything runs here, on the site's machines: the words come from the live transcript (vosk),
categories from the site's keywords (``tickets.category_keywords``, with jieba to cut Chinese
into words), places from the site's place list (``site.places``). Each suggestion says why
(the words that matched), so that the agent can judge it; the agent accepts or edits it on
the desktop, and what they did is recorded (``SuggestionOutcome``) to measure the
suggestions' quality (``quality``).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from recordings.masking import mask_numbers
from tickets.models import SuggestionOutcome, Ticket
from tickets.statemachine import OPEN_STATES

# Words that carry nothing in a spoken request: hesitations, discourse markers, greetings.
FILLERS = frozenset(
    "嗯 啊 呃 额 哦 噢 唉 哎 呀 嘛 呢 吧 喂 那个 这个 就是 就是说 然后 然后呢 怎么说呢 对对对 对对 "
    "你好 您好 谢谢 那么 反正 음 어 그 저".split()
)
REPEAT_DAYS = 7
FIELDS = ("description", "category", "location", "repeat")
OUTCOMES = ("accepted", "edited", "ignored")
_HAN = re.compile(r"[\u3400-\u9fff]")
# Spaces a recogniser puts between Chinese words, and runs of punctuation left by a filler.
_HAN_GAP = re.compile(
    r"(?<=[\u3400-\u9fff，。]) +(?=[\u3400-\u9fff0-9A-Za-z])|(?<=[0-9A-Za-z]) +(?=[\u3400-\u9fff])"
)
_PUNCT_RUN = re.compile(r"([，。、！？,.!?])[，。、！？,.!?\s]*")
# What follows a place name when the citizen gives the exact spot: 12号, 3栋2单元, 501室.
_DETAIL = re.compile(r"^[0-9一二三四五六七八九十零〇]+(?:号|栋|幢|单元|室|弄|号楼|号院)+")


@dataclass(frozen=True, slots=True)
class Suggestion:
    value: str
    reason: tuple[str, ...] = ()  # the words that matched

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "reason": list(self.reason)}


@dataclass(frozen=True, slots=True)
class Repeat:
    ticket_id: str
    why: str  # caller | place
    state: str
    category: str
    location: str
    opened_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "why": self.why,
            "state": self.state,
            "category": self.category,
            "location": self.location,
            "opened_at": self.opened_at.isoformat(),
        }


@dataclass(slots=True)
class Suggestions:
    description: Suggestion | None = None
    category: Suggestion | None = None
    location: Suggestion | None = None
    repeats: list[Repeat] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description.to_dict() if self.description else None,
            "category": self.category.to_dict() if self.category else None,
            "location": self.location.to_dict() if self.location else None,
            "repeats": [r.to_dict() for r in self.repeats],
        }


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


@lru_cache(maxsize=8)
def _taught(words: tuple[str, ...]) -> Any:
    """jieba, told the site's keywords and places, so that it does not cut them apart."""
    jieba = _jieba()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for word in words:
            if _HAN.search(word):
                jieba.add_word(word)
    return jieba


def _words(text: str, vocabulary: Iterable[str]) -> list[str]:
    return [w for w in _taught(tuple(sorted(set(vocabulary)))).lcut(text) if w.strip()]


def _joined(text: str) -> str:
    """Chinese as written (no spaces between words); other scripts keep theirs."""
    return _HAN_GAP.sub("", re.sub(r"\s+", " ", text).strip())


def clean_description(utterances: Sequence[str]) -> str:
    """The citizen's own words, one utterance after another, without fillers, masked."""
    parts = []
    for utterance in utterances:
        # Chinese is cut into words by jieba; other scripts are words between spaces (jieba
        # would cut Hangul into single letters, and 어 in 났어요 is no filler).
        kept = []
        for chunk in utterance.split():
            if _HAN.search(chunk):
                kept.append("".join(w for w in _jieba().lcut(chunk) if w not in FILLERS))
            elif chunk not in FILLERS:
                kept.append(chunk)
        cleaned = _joined(" ".join(k for k in kept if k)).strip(" ，,")
        if cleaned:
            parts.append(cleaned)
    if not parts:
        return ""
    chinese = any(_HAN.search(p) for p in parts)
    text = ("，" if chinese else " ").join(parts)
    text = _PUNCT_RUN.sub(r"\1", text)
    if chinese and not text.endswith(("。", "！", "？")):
        text += "。"
    return mask_numbers(text)


def _said(keyword: str, words: set[str], text: str) -> bool:
    # Chinese is matched word by word (路灯 is not in 马路灯光); other scripts as written.
    return keyword in words if _HAN.search(keyword) else keyword in text


def suggest_category(
    text: str, categories: Sequence[str], keywords: Mapping[str, Sequence[str]]
) -> Suggestion | None:
    """The category whose words the citizen said most (ties: the first configured), with the
    words that matched; None when none matched."""
    joined = _joined(text)
    vocabulary = [*categories, *(w for ws in keywords.values() for w in ws)]
    words = set(_words(joined, vocabulary))
    best: Suggestion | None = None
    for category in dict.fromkeys(c for c in categories if c):
        matched = tuple(
            w
            for w in dict.fromkeys([category, *keywords.get(category, ())])
            if _said(w, words, joined)
        )
        if matched and (best is None or len(matched) > len(best.reason)):
            best = Suggestion(category, matched)
    return best


def suggest_location(text: str, places: Sequence[str]) -> Suggestion | None:
    """The most specific place of the site's list the citizen named (the longest; several
    nested ones, 吴兴区 … 人民路, are given together), with the house number said after it."""
    joined = _joined(text).replace(" ", "")
    found: list[tuple[int, str]] = []
    for place in sorted(places, key=len, reverse=True):
        key = place.replace(" ", "")
        at = joined.find(key)
        if at >= 0 and not any(key in other for _, other in found):
            found.append((at, place))
    if not found:
        return None
    found.sort()
    last_at, last = found[-1]
    detail = _DETAIL.match(joined[last_at + len(last.replace(" ", "")) :])
    value = "".join(p for _, p in found) if _HAN.search(last) else " ".join(p for _, p in found)
    if detail:
        value += detail.group(0)
    return Suggestion(value, tuple(p for _, p in found))


def find_repeats(
    session: Session,
    *,
    ticket_id: str,
    caller: str,
    category: str,
    location: str,
    now: datetime,
    limit: int = 5,
) -> list[Repeat]:
    """Open requests this one may repeat: the same caller's, or the same place and category
    within ``REPEAT_DAYS``."""
    open_states = [s.value for s in OPEN_STATES]
    clauses = []
    if caller:
        clauses.append(Ticket.caller == caller)
    if category and location:
        clauses.append(
            (Ticket.category == category)
            & (Ticket.location.contains(location, autoescape=True))
            & (Ticket.opened_at >= now - timedelta(days=REPEAT_DAYS))
        )
    if not clauses:
        return []
    rows = session.scalars(
        select(Ticket)
        .where(Ticket.id != ticket_id, Ticket.state.in_(open_states), or_(*clauses))
        .order_by(Ticket.opened_at.desc(), Ticket.id.desc())
        .limit(limit)
    )
    return [
        Repeat(
            t.id,
            "caller" if caller and t.caller == caller else "place",
            t.state,
            t.category,
            t.location,
            t.opened_at,
        )
        for t in rows
    ]


def suggest(
    session: Session,
    ticket: Ticket,
    citizen: Sequence[str],
    *,
    categories: Sequence[str],
    keywords: Mapping[str, Sequence[str]],
    places: Sequence[str],
    now: datetime,
) -> Suggestions:
    """Everything the form may be offered for ``ticket``, from the citizen's utterances."""
    text = " ".join(citizen)
    out = Suggestions()
    description = clean_description(citizen)
    if description:
        out.description = Suggestion(description)
    out.category = suggest_category(text, categories, keywords)
    out.location = suggest_location(text, places)
    out.repeats = find_repeats(
        session,
        ticket_id=ticket.id,
        caller=ticket.caller,
        category=ticket.category or (out.category.value if out.category else ""),
        location=ticket.location or (out.location.reason[-1] if out.location else ""),
        now=now,
    )
    return out


def record(
    session: Session,
    ticket_id: str,
    field_name: str,
    *,
    suggested: str,
    final: str,
    outcome: str,
    actor: str,
    now: datetime,
) -> None:
    """What the agent did with a suggestion (the latest word counts: accepted, then edited)."""
    if field_name not in FIELDS:
        raise ValueError(f"no suggestion for the field {field_name!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
    row = session.scalar(
        select(SuggestionOutcome).where(
            SuggestionOutcome.ticket_id == ticket_id, SuggestionOutcome.field == field_name
        )
    )
    if row is None:
        row = SuggestionOutcome(ticket_id=ticket_id, field=field_name)
        session.add(row)
    row.suggested, row.final, row.outcome = suggested, final, outcome
    row.actor, row.at = actor, now


def quality(session: Session, since: datetime, until: datetime) -> dict[str, dict[str, Any]]:
    """Per field: how many suggestions were accepted, edited, ignored, and the share taken
    (accepted or edited) — the figure a site watches to know whether they help."""
    rows = session.execute(
        select(SuggestionOutcome.field, SuggestionOutcome.outcome, func.count())
        .where(SuggestionOutcome.at >= since, SuggestionOutcome.at < until)
        .group_by(SuggestionOutcome.field, SuggestionOutcome.outcome)
    ).all()
    out: dict[str, dict[str, Any]] = {}
    for name, outcome, count in rows:
        entry = out.setdefault(name, dict.fromkeys(OUTCOMES, 0))
        entry[outcome] = int(count)
    for entry in out.values():
        total = sum(entry[o] for o in OUTCOMES)
        entry["taken_rate"] = round((entry["accepted"] + entry["edited"]) / total, 4)
    return out

"""Hotspots (热点): per ISO week, the top categories, places and keywords of new tickets,
and a PNG chart of the weekly counts of the top categories.

Keywords are jieba's TF-IDF tags over the week's descriptions, without the words every
ticket contains (市民, 反映, 希望 ...). Places are the location cut after its most specific
recognisable part (street, road, community, village), so "XX路12号3单元" and "XX路15号" count
as one place.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.engine import Connection

from tickets.kpi import Period
from tickets.models import Ticket

STOP_WORDS = frozenset(
    "市民 来电 反映 希望 诉求 问题 处理 表示 要求 请求 咨询 投诉 情况 相关 部门 进行 目前 现在 "
    "一直 没有 已经 可以 需要 这个 那个 我们 他们 自己 因为 所以 但是 如果 还是 时候 今天 昨天 "
    "工单 热线 12345".split()
)
_PLACE = re.compile(r"^(.*?(?:街道|社区|小区|村|镇|乡|路|街|巷|大道|广场|花园|公寓))")


@dataclass(frozen=True, slots=True)
class HotspotRecord:
    opened_at: datetime
    category: str
    location: str
    description: str


@dataclass(slots=True)
class WeekHotspots:
    week: str  # ISO week, "2026-W41"
    start: date  # its Monday
    total: int
    categories: list[tuple[str, int]] = field(default_factory=list)
    places: list[tuple[str, int]] = field(default_factory=list)
    keywords: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "week": self.week,
            "start": self.start.isoformat(),
            "total": self.total,
            "categories": [{"name": n, "count": c} for n, c in self.categories],
            "places": [{"name": n, "count": c} for n, c in self.places],
            "keywords": [{"word": w, "weight": round(x, 4)} for w, x in self.keywords],
        }


def place_key(location: str) -> str:
    text = re.sub(r"\s+", "", location)
    if not text:
        return ""
    match = _PLACE.match(text)
    return match.group(1) if match else text[:30]


@lru_cache(maxsize=1)
def _tfidf() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    with warnings.catch_warnings():
        # jieba.analyse reads its IDF table with an unclosed open() at import time.
        warnings.simplefilter("ignore", ResourceWarning)
        import jieba.analyse

    return jieba.analyse.default_tfidf


def keywords(texts: Iterable[str], top: int = 10) -> list[tuple[str, float]]:
    text = "\n".join(t for t in texts if t)
    if not text.strip():
        return []
    tags = _tfidf().extract_tags(text, topK=top * 3, withWeight=True)
    result = []
    for word, weight in tags:
        if word in STOP_WORDS or word.isdigit() or len(word) < 2:
            continue
        result.append((str(word), float(weight)))
        if len(result) == top:
            break
    return result


def weekly_hotspots(
    records: Iterable[HotspotRecord], timezone: str = "Asia/Shanghai", top: int = 10
) -> list[WeekHotspots]:
    tz = ZoneInfo(timezone)
    weeks: dict[tuple[int, int], list[HotspotRecord]] = {}
    for record in records:
        year, week, _ = record.opened_at.astimezone(tz).isocalendar()
        weeks.setdefault((year, week), []).append(record)
    result = []
    for (year, week), rows in sorted(weeks.items()):
        categories = Counter(r.category or "未分类" for r in rows)
        places = Counter(p for p in (place_key(r.location) for r in rows) if p)
        result.append(
            WeekHotspots(
                week=f"{year}-W{week:02d}",
                start=date.fromisocalendar(year, week, 1),
                total=len(rows),
                categories=categories.most_common(top),
                places=places.most_common(top),
                keywords=keywords((r.description for r in rows), top),
            )
        )
    return result


def load_records(conn: Connection, period: Period) -> list[HotspotRecord]:
    rows = conn.execute(
        select(Ticket.opened_at, Ticket.category, Ticket.location, Ticket.description).where(
            Ticket.opened_at >= period.start,
            Ticket.opened_at < period.end,
            Ticket.state.not_in(["merged"]),
        )
    )
    return [HotspotRecord(at, cat or "", loc or "", desc or "") for at, cat, loc, desc in rows]


_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "AR PL UMing CN",
)


def write_chart(weeks: Sequence[WeekHotspots], path: Path, top: int = 5) -> Path:
    """A line chart of the weekly ticket counts of the overall top categories."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib import pyplot as plt

    installed = {f.name for f in font_manager.fontManager.ttflist}
    fonts = [f for f in _CJK_FONTS if f in installed]
    overall: Counter[str] = Counter()
    for week in weeks:
        overall.update(dict(week.categories))
    names = [name for name, _ in overall.most_common(top)]
    labels = [w.week for w in weeks]
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # Without a CJK font Chinese labels render as boxes; the chart is still useful.
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        with plt.rc_context(
            {"font.sans-serif": [*fonts, "DejaVu Sans"], "axes.unicode_minus": False}
        ):
            fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
            try:
                for name in names:
                    counts = [dict(w.categories).get(name, 0) for w in weeks]
                    ax.plot(labels, counts, marker="o", label=name)
                ax.plot(labels, [w.total for w in weeks], color="grey", ls="--", label="合计 total")
                ax.set_title("12345 热点 weekly hotspots")
                ax.set_ylabel("tickets")
                ax.legend(loc="upper left", fontsize="small")
                ax.grid(alpha=0.3)
                fig.autofmt_xdate()
                fig.tight_layout()
                fig.savefig(path, format="png")
            finally:
                plt.close(fig)
    return path

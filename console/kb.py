"""The knowledge base the agents search during a call: articles from a JSON file, searched
with an in-memory inverted index over jieba tokens, ranked by BM25.

Chinese has no spaces, so words come from jieba's search-mode segmentation; character bigrams
are indexed beside them (at a lower weight) because the citizen's words and the article's
rarely segment the same way (社保 / 社会保险). A few hundred articles index in well under a
second; the file is read once at start.

The file is a list of ``{"id", "title", "category", "body", "keywords": [...]}``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).with_name("kb_sample.json")
K1, B = 1.5, 0.75
BIGRAM_WEIGHT = 0.4
TITLE_BOOST = 2  # title and keywords count this many times
STOP = frozenset(
    "的 了 吗 呢 啊 吧 是 在 有 和 与 及 或 我 你 他 她 它 我们 怎么 怎样 如何 什么 哪里 哪个 "
    "可以 能 要 想 请问 一下 这个 那个 这 那 就 都 也 还 会 被 把 对 从 到 为 给 让 没有 不".split()
)
_CJK = re.compile(r"[\u3400-\u9fff]+")
_WORD = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    title: str
    category: str
    body: str
    keywords: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category,
            "body": self.body,
            "keywords": list(self.keywords),
        }


def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def tokens(text: str) -> list[str]:
    """Words (jieba search mode) and latin words/numbers, lower-cased, stop words dropped."""
    out: list[str] = []
    for run in _CJK.findall(text):
        out.extend(w for w in _jieba().cut_for_search(run) if w.strip() and w not in STOP)
    out.extend(w.lower() for w in _WORD.findall(text))
    return out


def bigrams(text: str) -> list[str]:
    grams: list[str] = []
    for run in _CJK.findall(text):
        grams.extend("#" + run[i : i + 2] for i in range(len(run) - 1))
    return grams


class KnowledgeBase:
    def __init__(self, articles: list[Article]) -> None:
        self.articles = articles
        self._postings: dict[str, dict[int, float]] = defaultdict(dict)
        self._lengths: list[float] = []
        self._ready = threading.Event()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path | None = None) -> KnowledgeBase:
        source = Path(path) if path else SAMPLE
        raw = json.loads(source.read_text("utf-8"))
        if not isinstance(raw, list):
            raise ValueError(f"{source}: expected a list of articles")
        articles = []
        for i, item in enumerate(raw):
            try:
                articles.append(
                    Article(
                        id=str(item["id"]),
                        title=str(item["title"]),
                        category=str(item.get("category", "")),
                        body=str(item["body"]),
                        keywords=tuple(str(k) for k in item.get("keywords", ())),
                    )
                )
            except (KeyError, TypeError) as exc:
                raise ValueError(f"{source}: article {i}: missing {exc}") from None
        log.info("knowledge base: %d articles from %s", len(articles), source)
        return cls(articles)

    def build(self) -> None:
        """Index every article (jieba loads its dictionary on first use: ~1 s)."""
        with self._lock:
            if self._ready.is_set():
                return
            for doc, article in enumerate(self.articles):
                head = " ".join((article.title, article.category, *article.keywords))
                weights: defaultdict[str, float] = defaultdict(float)
                for tok in tokens(head):
                    weights[tok] += TITLE_BOOST
                for tok in tokens(article.body):
                    weights[tok] += 1
                for gram in bigrams(head):
                    weights[gram] += TITLE_BOOST * BIGRAM_WEIGHT
                for gram in bigrams(article.body):
                    weights[gram] += BIGRAM_WEIGHT
                for term, tf in weights.items():
                    self._postings[term][doc] = tf
                self._lengths.append(float(sum(weights.values())))
            self._ready.set()

    def search(self, query: str, limit: int = 10) -> list[dict[str, Any]]:
        self.build()
        terms = Counter(tokens(query))
        for gram in bigrams(query):
            terms[gram] += 1
        if not terms or not self.articles:
            return []
        n = len(self.articles)
        avg = sum(self._lengths) / n
        scores: dict[int, float] = defaultdict(float)
        for term, qtf in terms.items():
            posting = self._postings.get(term)
            if not posting:
                continue
            idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            weight = BIGRAM_WEIGHT if term.startswith("#") else 1.0
            for doc, tf in posting.items():
                norm = tf * (K1 + 1) / (tf + K1 * (1 - B + B * self._lengths[doc] / avg))
                scores[doc] += weight * qtf * idf * norm
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [{**self.articles[doc].to_dict(), "score": round(score, 3)} for doc, score in ranked]

"""Arrival profiles for the simulator and the staffing calculator.

A profile is one day of a hotline: calls per hour, the mix of dialled numbers, handle-time
and patience distributions, caller classes, routing settings and the leaders' schedule. The
shipped profiles live in ``config/profiles/*.toml``; ``load_profile`` also takes a path.
A profile may derive from another (``base`` and ``scale``), as the surge does.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from routing.settings import AgentSettings, HotlineNumber, LeaderShift, RoutingSettings

PROFILE_DIR = Path(__file__).resolve().parent.parent / "config" / "profiles"
CHINA = timezone(timedelta(hours=8))  # no daylight saving: a fixed offset is exact


@dataclass(frozen=True, slots=True)
class Distribution:
    """A positive random duration given by its mean and coefficient of variation."""

    kind: Literal["exponential", "lognormal", "fixed"]
    mean_s: float
    cv: float = 1.0

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        if self.kind == "exponential":
            return rng.exponential(self.mean_s, n)
        if self.kind == "lognormal":
            sigma2 = math.log1p(self.cv**2)
            return rng.lognormal(math.log(self.mean_s) - sigma2 / 2, math.sqrt(sigma2), n)
        return np.full(n, self.mean_s)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    start: datetime  # midnight (China time) of the simulated day
    hourly_calls: tuple[float, ...]  # expected calls offered in each hour
    hotlines: tuple[HotlineNumber, ...]
    shares: tuple[float, ...]  # share of calls per hotline, summing to 1
    handle: Distribution
    patience: Distribution
    open_ticket: float  # share of callers with an open ticket (sticky candidates)
    enterprise: float
    flagged: float
    routing: RoutingSettings
    leaders: tuple[AgentSettings, ...] = ()
    leader_shifts: tuple[LeaderShift, ...] = ()

    @property
    def calls_per_day(self) -> float:
        return sum(self.hourly_calls)

    def skill_shares(self) -> dict[str, float]:
        shares: dict[str, float] = {}
        for hotline, share in zip(self.hotlines, self.shares, strict=True):
            shares[hotline.skill] = shares.get(hotline.skill, 0.0) + share
        return shares


# --- the file format ---------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _DistributionFile(_Model):
    dist: Literal["exponential", "lognormal", "fixed"] = "exponential"
    mean_s: float = Field(gt=0)
    cv: float = Field(default=1.0, ge=0)


class _HotlineFile(_Model):
    did: str
    name: str
    topic: str
    skill: str
    share: float = Field(gt=0)


class _CallersFile(_Model):
    open_ticket: float = Field(default=0.0, ge=0, le=1)
    enterprise: float = Field(default=0.0, ge=0, le=1)
    flagged: float = Field(default=0.0, ge=0, le=1)


class _ShiftFile(_Model):
    agent: str
    seat: str
    start: time
    end: time
    topics: list[str]
    title: str = ""


class _ProfileFile(_Model):
    name: str
    description: str = ""
    scale: float = Field(default=1.0, gt=0)
    date: date
    calls_per_day: float = Field(gt=0)
    hourly_weights: list[float] = Field(min_length=1)
    handle: _DistributionFile
    patience: _DistributionFile
    callers: _CallersFile = _CallersFile()
    hotlines: list[_HotlineFile] = Field(min_length=1)
    routing: RoutingSettings = RoutingSettings()
    leaders: list[AgentSettings] = Field(default_factory=list)
    leader_shifts: list[_ShiftFile] = Field(default_factory=list)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (``haikou-peak``) or a TOML file by path."""
    return _build(_read(name_or_path), name_or_path)


def _read(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILE_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(available_profiles())
        raise ValueError(f"no profile {name_or_path!r} (shipped: {known})")
    with path.open("rb") as f:
        data = tomllib.load(f)
    base_name = data.pop("base", None)
    if base_name is None:
        return data
    # Keys of the derived file replace those of the base; the scales multiply.
    base = _read(base_name)
    merged = {k: v for k, v in base.items() if k not in ("name", "description")}
    merged.update(data)
    merged["scale"] = data.get("scale", 1.0) * base.get("scale", 1.0)
    return merged


def _build(data: dict[str, Any], origin: str) -> Profile:
    f = _ProfileFile.model_validate(data)
    weights = np.asarray(f.hourly_weights, dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"profile {origin!r}: hourly_weights must be non-negative, not all 0")
    hourly = weights / weights.sum() * f.calls_per_day * f.scale
    start = datetime.combine(f.date, time(0), CHINA)
    share_total = sum(h.share for h in f.hotlines)

    def dist(d: _DistributionFile) -> Distribution:
        return Distribution(d.dist, d.mean_s, d.cv)

    def at(t: time) -> datetime:
        return datetime.combine(f.date, t, CHINA)

    callers = f.callers
    return Profile(
        name=f.name,
        description=f.description,
        start=start,
        hourly_calls=tuple(float(x) for x in hourly),
        hotlines=tuple(
            HotlineNumber(did=h.did, name=h.name, topic=h.topic, skill=h.skill) for h in f.hotlines
        ),
        shares=tuple(h.share / share_total for h in f.hotlines),
        handle=dist(f.handle),
        patience=dist(f.patience),
        open_ticket=callers.open_ticket,
        enterprise=callers.enterprise,
        flagged=callers.flagged,
        routing=f.routing,
        leaders=tuple(f.leaders),
        leader_shifts=tuple(
            LeaderShift(
                agent=s.agent,
                seat=s.seat,
                start=at(s.start),
                end=at(s.end),
                topics=s.topics,
                title=s.title,
            )
            for s in f.leader_shifts
        ),
    )

"""Erlang B, Erlang C (M/M/N) and Erlang A (M/M/N+M: callers abandon after an exponential
patience), the queueing formulas behind ``hotline staffing``.

Rates are per second. The service level is the 15秒接通率 of the domain: among answered calls,
the share answered within ``threshold_s``; the answer rate is 接通率, answered over offered.

Erlang A has no closed form that is safe to evaluate for a few hundred agents, so it is
computed from its birth-death chain: the stationary distribution in log space (no overflow
for large loads), then the waiting time of served callers by uniformisation. The derivation,
for a caller who finds all N agents busy and j callers ahead:

- at position m (m - 1 ahead) the next event comes at rate N·mu + m·theta: an agent frees
  up or someone ahead gives up (N·mu + (m - 1)·theta), or the caller gives up (theta);
- so the caller is served with probability N·mu / (N·mu + (j + 1)·theta) (the product of
  the step probabilities telescopes), and, given service, waits the sum of independent
  exponentials of rates N·mu + m·theta for m = 1 … j + 1 (a pure-death chain to absorption).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]

# Probabilities below e^-40 of the largest state are dropped from the truncated chain.
_LOG_TAIL = 40.0


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    agents: int
    offered_erlangs: float
    p_wait: float  # share of callers who find every agent busy
    answer_rate: float  # answered / offered
    service_level: float  # answered within the threshold / answered
    asa_s: float  # average wait of answered calls (including those answered at once)
    occupancy: float  # share of agent time spent on calls


def erlang_b(agents: int, erlangs: float) -> float:
    """Blocking probability of M/M/N/N."""
    if agents < 0 or erlangs < 0:
        raise ValueError("agents and load must not be negative")
    b = 1.0
    for k in range(1, agents + 1):
        b = erlangs * b / (k + erlangs * b)
    return b


def erlang_c(agents: int, erlangs: float) -> float:
    """Probability of waiting in M/M/N (1 when the queue is unstable)."""
    if agents <= erlangs:
        return 1.0
    b = erlang_b(agents, erlangs)
    return agents * b / (agents - erlangs * (1.0 - b))


def erlang_c_metrics(
    rate_per_s: float, aht_s: float, agents: int, threshold_s: float = 15.0
) -> QueueMetrics:
    """M/M/N without abandonment: every caller is answered, perhaps after a long wait."""
    _check(rate_per_s, aht_s, agents)
    a = rate_per_s * aht_s
    if agents <= a:
        return QueueMetrics(agents, a, 1.0, 1.0, 0.0, math.inf, 1.0)
    c = erlang_c(agents, a)
    drain = agents / aht_s - rate_per_s
    return QueueMetrics(
        agents=agents,
        offered_erlangs=a,
        p_wait=c,
        answer_rate=1.0,
        service_level=1.0 - c * math.exp(-drain * threshold_s),
        asa_s=c / drain,
        occupancy=a / agents if agents else 0.0,
    )


def erlang_a_metrics(
    rate_per_s: float,
    aht_s: float,
    patience_s: float,
    agents: int,
    threshold_s: float = 15.0,
) -> QueueMetrics:
    """M/M/N+M: exponential handle times and patience (mean ``patience_s``)."""
    _check(rate_per_s, aht_s, agents)
    if patience_s <= 0:
        raise ValueError("patience must be positive")
    if math.isinf(patience_s):
        return erlang_c_metrics(rate_per_s, aht_s, agents, threshold_s)
    a = rate_per_s * aht_s
    if rate_per_s == 0:
        return QueueMetrics(agents, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0)
    if agents == 0:
        return QueueMetrics(0, a, 1.0, 0.0, 0.0, 0.0, 0.0)
    mu, theta = 1.0 / aht_s, 1.0 / patience_s
    below, queue = _stationary(rate_per_s, mu, theta, agents)
    m = np.arange(1, len(queue) + 1, dtype=np.float64)
    death = agents * mu + m * theta  # rate of leaving position m
    served = agents * mu / death  # P(served | found m - 1 callers ahead)
    mass = queue * served  # arrivals who wait and are served, by position on arrival
    answer_rate = float(below.sum() + mass.sum())
    waited = float((mass * np.cumsum(1.0 / death)).sum())
    within = float(below.sum()) + _absorbed_by(mass, death, threshold_s)
    return QueueMetrics(
        agents=agents,
        offered_erlangs=a,
        p_wait=float(queue.sum()),
        answer_rate=answer_rate,
        service_level=within / answer_rate,
        asa_s=waited / answer_rate,
        occupancy=a * answer_rate / agents,
    )


def _check(rate_per_s: float, aht_s: float, agents: int) -> None:
    if rate_per_s < 0 or aht_s <= 0 or agents < 0:
        raise ValueError("need rate >= 0, handle time > 0 and agents >= 0")


def _stationary(lam: float, mu: float, theta: float, agents: int) -> tuple[Floats, Floats]:
    """Stationary probabilities of states 0 … N-1 (nobody waits) and N, N+1, … (queue),
    normalised over the truncated chain."""
    k = np.arange(1, agents + 1, dtype=np.float64)
    log_below = np.concatenate(([0.0], np.cumsum(np.log(lam / (k * mu)))))
    # The queue grows while arrivals outpace departures (up to j0), then decays like a
    # Gaussian tail of width sqrt(lam / theta): size the truncation from both.
    j0 = max(0.0, (lam - agents * mu) / theta)
    size = int(j0 + 10.0 * math.sqrt(lam / theta) + 64)
    while True:
        j = np.arange(1, size + 1, dtype=np.float64)
        log_queue = log_below[-1] + np.cumsum(np.log(lam / (agents * mu + j * theta)))
        top = max(float(log_below.max()), float(log_queue.max()))
        if log_queue[-1] < top - _LOG_TAIL:
            break
        size *= 2
    below = np.exp(log_below[:-1] - top)
    # State N is the first queue state: an arrival finding N busy waits with nobody ahead.
    queue = np.exp(np.concatenate(([log_below[-1]], log_queue)) - top)
    total = below.sum() + queue.sum()
    return below / total, queue / total


def _absorbed_by(mass: Floats, death: Floats, t: float) -> float:
    """P(a pure-death chain started with ``mass`` on levels 1 … M, leaving level m at rate
    ``death[m-1]``, is absorbed by time t)."""
    live = np.nonzero(mass > 1e-18 * mass.max())[0] if mass.size else np.array([], dtype=int)
    if live.size == 0 or t <= 0:
        return 0.0
    top = int(live.max()) + 1
    v, rates = mass[:top], death[:top]
    uniform = float(rates.max())
    if uniform * t <= _UNIFORM_STEPS:
        return _absorbed_uniformised(v, rates, uniform, t)
    # Very impatient callers make the chain stiff (rate x t in the millions) but keep the
    # queue short, so the matrix exponential of the small generator is the cheaper way.
    generator = np.diag(-rates) + np.diag(rates[1:], -1)
    remaining = v @ _expm(generator * t)
    return float(v.sum() - remaining.sum())


_UNIFORM_STEPS = 20000.0


def _absorbed_uniformised(v: Floats, rates: Floats, uniform: float, t: float) -> float:
    """Uniformisation: a Poisson(uniform x t) number of steps of the embedded chain."""
    v = v.copy()
    step = rates / uniform
    lt = uniform * t
    absorbed = 0.0
    total = 0.0
    for k in range(int(lt + 12.0 * math.sqrt(lt) + 30) + 1):
        total += math.exp(-lt + k * math.log(lt) - math.lgamma(k + 1)) * absorbed
        flow = v * step
        absorbed += float(flow[0])
        v -= flow
        v[:-1] += flow[1:]
    return total


def _expm(a: Floats) -> Floats:
    """Matrix exponential by scaling and squaring with a Taylor series (numpy only)."""
    norm = float(np.abs(a).sum(axis=1).max())
    squarings = max(0, math.ceil(math.log2(norm / 0.5))) if norm > 0.5 else 0
    scaled = a / 2.0**squarings
    result = np.eye(a.shape[0])
    term = np.eye(a.shape[0])
    for k in range(1, 20):  # ||scaled|| <= 1/2: the tail after 19 terms is below 1e-23
        term = term @ scaled / k
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return result

"""Erlang B/C/A against known values, textbook identities and an independent formula."""

from __future__ import annotations

import math

import pytest

from routing.erlang import erlang_a_metrics, erlang_b, erlang_c, erlang_c_metrics


def erlang_c_by_sum(n: int, a: float) -> float:
    """Erlang C straight from its definition, as an independent check."""
    top = a**n / math.factorial(n) * n / (n - a)
    return top / (sum(a**k / math.factorial(k) for k in range(n)) + top)


def test_erlang_b_known_values() -> None:
    # B(5, 3) = (3^5/5!) / sum_{k<=5} 3^k/k! = 2.025 / 18.4
    assert erlang_b(5, 3.0) == pytest.approx(2.025 / 18.4, rel=1e-12)
    assert erlang_b(0, 4.0) == 1.0
    assert erlang_b(10, 5.0) == pytest.approx(0.018384, abs=1e-6)  # textbook table value


def test_erlang_c_known_values() -> None:
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9, rel=1e-12)
    assert erlang_c(2, 2.0) == 1.0  # unstable: everybody waits
    for n, a in [(12, 10.0), (30, 25.5), (80, 70.0)]:
        assert erlang_c(n, a) == pytest.approx(erlang_c_by_sum(n, a), rel=1e-9)


def test_erlang_c_service_level_and_asa() -> None:
    # 100 calls per 30 minutes, 180 s handle time: 10 erlangs; with 13 agents, closed forms.
    m = erlang_c_metrics(100 / 1800, 180, 13, threshold_s=20)
    c = erlang_c_by_sum(13, 10.0)
    assert m.p_wait == pytest.approx(c)
    assert m.service_level == pytest.approx(1 - c * math.exp(-(13 - 10) * 20 / 180))
    assert m.asa_s == pytest.approx(c * 180 / (13 - 10))
    assert m.answer_rate == 1.0 and m.occupancy == pytest.approx(10 / 13)


def test_erlang_a_without_abandonment_is_erlang_c() -> None:
    lam, aht, n = 100 / 240, 240.0, 110  # 100 erlangs
    a = erlang_a_metrics(lam, aht, 1e9, n)
    c = erlang_c_metrics(lam, aht, n)
    assert a.p_wait == pytest.approx(c.p_wait, rel=1e-4)
    assert a.service_level == pytest.approx(c.service_level, rel=1e-4)
    assert a.asa_s == pytest.approx(c.asa_s, rel=1e-3)
    assert a.answer_rate == pytest.approx(1.0, abs=1e-5)


def test_erlang_a_with_patience_equal_to_handle_time_is_poisson() -> None:
    # theta = mu makes every customer leave at rate mu: the M/M/infinity (Poisson) law, so
    # P(abandon) = theta * E[(X - N)+] / lambda with X ~ Poisson(A).
    lam, aht, n = 10 / 60, 60.0, 8
    a = lam * aht
    pois = [math.exp(-a + k * math.log(a) - math.lgamma(k + 1)) for k in range(200)]
    queue = sum((k - n) * p for k, p in enumerate(pois) if k > n)
    m = erlang_a_metrics(lam, aht, aht, n)
    assert m.answer_rate == pytest.approx(1 - queue / aht / lam, rel=1e-9)
    assert m.p_wait == pytest.approx(sum(pois[n:]), rel=1e-9)


def test_erlang_a_with_very_impatient_callers_is_erlang_b() -> None:
    lam, aht = 10 / 60, 60.0
    for n in (3, 8, 12):
        m = erlang_a_metrics(lam, aht, 1e-4, n)
        assert 1 - m.answer_rate == pytest.approx(erlang_b(n, lam * aht), rel=1e-4)


def test_erlang_a_service_level_against_the_hypoexponential_formula() -> None:
    """A light load where the queue stays short, so the closed-form hypoexponential CDF
    (numerically fragile for long queues) gives an independent value of P(W <= t)."""
    lam, mu, theta, n, t = 1 / 60, 1 / 90, 1 / 45, 2, 20.0
    # Stationary probabilities of the birth-death chain, truncated far out.
    p = [1.0]
    for k in range(1, 60):
        p.append(p[-1] * lam / (min(k, n) * mu + max(k - n, 0) * theta))
    total = sum(p)
    p = [x / total for x in p]
    within = sum(p[:n])
    answered = within
    for j in range(0, 16):  # beyond 16 waiting, p < 1e-17 and the formula cancels badly
        rates = [n * mu + m * theta for m in range(1, j + 2)]
        served = n * mu / (n * mu + (j + 1) * theta)
        cdf = 1.0 - sum(
            math.exp(-r * t) * math.prod(q / (q - r) for q in rates if q != r) for r in rates
        )
        within += p[n + j] * served * cdf
        answered += p[n + j] * served
    m = erlang_a_metrics(lam, 1 / mu, 1 / theta, n, threshold_s=t)
    assert m.answer_rate == pytest.approx(answered, rel=1e-9)
    assert m.service_level == pytest.approx(within / answered, rel=1e-7)


def test_erlang_a_improves_with_every_agent() -> None:
    lam, aht, patience = 1000 / 3600, 240.0, 120.0
    runs = [erlang_a_metrics(lam, aht, patience, n) for n in range(55, 90)]
    for fewer, more in zip(runs, runs[1:], strict=False):
        assert more.answer_rate > fewer.answer_rate
        assert more.service_level > fewer.service_level
        assert more.asa_s < fewer.asa_s


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        erlang_b(-1, 2.0)
    with pytest.raises(ValueError):
        erlang_a_metrics(1.0, 0.0, 60.0, 3)
    with pytest.raises(ValueError):
        erlang_a_metrics(1.0, 60.0, 0.0, 3)

"""The reports page's two views of the same calls: today's counters (``/api/kpi/today``) and
the hotline's row of the period table (``/api/reports/kpi``) must give the same call KPIs,
whatever else the calls table holds (callbacks, internal calls, calls still waiting)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cti.app import Hotline
from cti.models import CallRow
from tests.console.conftest import TestClient, login

TZ = ZoneInfo("Asia/Shanghai")


def _row(n: int, at: datetime, **fields: object) -> CallRow:
    return CallRow(
        node="pbx1", linkedid=f"agree-{n}", caller="13800000001", started_at=at, **fields
    )


def seed_today(hotline: Hotline) -> None:
    """Today, a few minutes ago: two inbound calls answered (one after 20 s), one abandoned,
    one still waiting in the queue; an agent's callback to a citizen and a call between two
    seats, neither of them offered to the hotline."""
    now = datetime.now(UTC)
    midnight = now.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    at = max(now - timedelta(minutes=10), midnight.astimezone(UTC) + timedelta(seconds=1))

    def done(wait: float, answered: bool) -> dict[str, object]:
        return {
            "answered": answered,
            "abandoned": not answered,
            "wait_s": wait,
            "answered_at": at + timedelta(seconds=wait) if answered else None,
            "ended_at": at + timedelta(seconds=wait + 30),
            "state": "ended",
        }

    with hotline.sessions.begin() as s:
        s.add_all(
            [
                _row(1, at, **done(5, True)),
                _row(2, at, **done(20, True)),
                _row(3, at, **done(30, False)),
                _row(4, at, state="waiting"),
                _row(5, at, direction="callback", ended_at=at + timedelta(minutes=2)),
                _row(6, at, direction="internal", ended_at=at + timedelta(minutes=1)),
            ]
        )


def test_today_counters_and_period_table_agree_on_the_same_calls(
    client: TestClient, hotline: Hotline
) -> None:
    seed_today(hotline)
    login(client, "boss")
    today = client.get("/api/kpi/today").json()
    period = today["day"][:7]  # the month holding today: these calls are all it has
    table = client.get(f"/api/reports/kpi?period={period}").json()
    hotline_row = next(r for r in table["departments"] if r["department_id"] == "all")

    assert (today["offered"], today["answered"], today["answered_15s"]) == (3, 2, 1)
    assert today["connection_rate"] == hotline_row["connection_rate"] == round(2 / 3, 6)
    assert today["service_level_15s"] == hotline_row["answered_15s_rate"] == 0.5
    for name, (n, d) in {"connection_rate": (2, 3), "answered_15s_rate": (1, 2)}.items():
        counts = {"numerator": n, "denominator": d}
        assert today["counts"][name] == hotline_row["counts"][name] == counts

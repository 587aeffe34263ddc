"""The simulation chart (PNG): volume and staffing per hour above, the rates below."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_report(
    report: dict[str, Any], path: Path, answer_target: float = 0.985, sl_target: float = 0.8
) -> None:
    # Imported here: matplotlib takes a while to load and only this command needs it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = report["hours"]
    x = [h["hour"] for h in hours]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    try:
        top.bar(x, [h["answered"] for h in hours], color="#4c78a8", label="answered")
        top.bar(
            x,
            [h["abandoned"] for h in hours],
            bottom=[h["answered"] for h in hours],
            color="#e45756",
            label="abandoned",
        )
        top.set_ylabel("calls offered")
        staff = top.twinx()
        staff.step(x, [h["agents"] for h in hours], where="mid", color="#333333", label="agents")
        staff.set_ylabel("agents")
        lines, labels = top.get_legend_handles_labels()
        more, more_labels = staff.get_legend_handles_labels()
        top.legend(lines + more, labels + more_labels, loc="upper left")
        top.set_title(
            f"{report['profile']}: {report['offered']} calls, "
            f"answered {report['answer_rate']:.1%}, within 15 s {report['service_level_15s']:.1%}"
        )

        for key, label, color in (
            ("answer_rate", "answer rate", "#4c78a8"),
            ("service_level_15s", "answered within 15 s", "#54a24b"),
            ("occupancy", "agent occupancy", "#f58518"),
        ):
            bottom.plot(x, [h[key] for h in hours], marker="o", ms=3, label=label, color=color)
        bottom.axhline(answer_target, ls="--", lw=1, color="#4c78a8")
        bottom.axhline(sl_target, ls=":", lw=1, color="#54a24b")
        bottom.set_ylim(0, 1.02)
        bottom.set_xlabel("hour of day")
        bottom.set_xticks(x)
        bottom.legend(loc="lower left")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)

"""``hotline simulate`` and ``hotline staffing``.

The main ``hotline`` command registers these through ``add_commands``; ``python -m routing``
runs them on their own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Imported where used: numpy and the simulator load only for the commands that run them.
    from routing.profiles import Profile
    from routing.staffing import Targets


def _number(kind: type[float] | type[int], low: float, high: float | None = None) -> Any:
    """An argparse type: a number of ``kind`` from ``low`` (and up to ``high``), else the
    usage error names the option and the range."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value != value or value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{text}: must be {span}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_commands(subparsers: Any) -> None:
    """Register ``simulate`` and ``staffing`` on an argparse subparsers object."""
    sim = subparsers.add_parser(
        "simulate",
        help="simulate a day of the floor with the routing engine",
        description="Discrete-event simulation of a hotline day; every decision is made "
        "by the routing engine.",
    )
    _profile_arg(sim)
    sim.add_argument(
        "--staffing",
        default="auto",
        metavar="auto|FILE.json|N",
        help="'auto' (run the staffing step), a file from 'staffing --json', "
        "or a flat number of agents for every hour (default: auto)",
    )
    sim.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    sim.add_argument(
        "--answer-delay",
        type=_number(float, 0, 600),
        default=0.0,
        metavar="S",
        help="seconds a seat rings before it answers an offer (default: 0)",
    )
    sim.add_argument("--chart", type=Path, metavar="FILE.png", help="write the chart here")
    _output_args(sim)
    _target_args(sim)
    sim.set_defaults(func=run_simulate)

    staff = subparsers.add_parser(
        "staffing",
        help="agents needed per hour for a service target (Erlang A or C)",
        description="Agents per hour and skill group for the targets, with the predicted "
        "answer rate and 15-second service level.",
    )
    _profile_arg(staff)
    _output_args(staff)
    _target_args(staff)
    staff.set_defaults(func=run_staffing)


def _profile_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        default="haikou-peak",
        help="a shipped profile (haikou-peak, bozhou-normal, surge-5x, ...) or a TOML file "
        "(default: haikou-peak)",
    )


def _output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--output", type=Path, metavar="FILE.json", help="also write the JSON")


def _target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=["erlang_a", "erlang_c"], default="erlang_a")
    parser.add_argument("--service-level", type=_number(float, 0, 1), default=0.80, metavar="SHARE")
    parser.add_argument("--threshold", type=_number(float, 0, 3600), default=15.0, metavar="S")
    parser.add_argument("--answer-rate", type=_number(float, 0, 1), default=0.985, metavar="SHARE")
    parser.add_argument("--min-agents", type=_number(int, 0, 10_000), default=1, metavar="N")


def _targets(args: argparse.Namespace) -> Targets:
    from routing.staffing import Targets

    return Targets(
        service_level=args.service_level,
        threshold_s=args.threshold,
        answer_rate=args.answer_rate,
        model=args.model,
        min_agents=args.min_agents,
    )


def _check_outputs(args: argparse.Namespace) -> None:
    """The files to write, before the work: nothing is computed for a path that fails."""
    from cti.errors import OutputError

    if args.output is not None:
        OutputError.check("--output", args.output)
    if getattr(args, "chart", None) is not None:
        OutputError.check("--chart", args.chart)


def run_staffing(args: argparse.Namespace) -> int:
    from routing.profiles import load_profile
    from routing.staffing import plan_staffing

    _check_outputs(args)
    try:
        profile = load_profile(args.profile)
        result = plan_staffing(profile, _targets(args)).to_dict()
    except ValueError as exc:
        print(f"hotline staffing: {exc}", file=sys.stderr)
        return 2
    _emit(args, result, _staffing_table)
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    from routing.profiles import load_profile
    from routing.simulator import simulate

    _check_outputs(args)
    try:
        profile = load_profile(args.profile)
        staffing, source = _staffing(args, profile)
        report = simulate(profile, staffing, seed=args.seed, answer_delay_s=args.answer_delay)
    except (ValueError, OSError) as exc:
        print(f"hotline simulate: {exc}", file=sys.stderr)
        return 2
    result = report.to_dict()
    result["staffing"] = source
    if args.chart:
        from cti.errors import OutputError
        from routing.chart import plot_report

        try:
            plot_report(result, args.chart, args.answer_rate, args.service_level)
        except OSError as exc:
            raise OutputError("--chart", args.chart, exc.strerror or str(exc)) from None
    _emit(args, result, _simulation_table)
    return 0


def _staffing(args: argparse.Namespace, profile: Profile) -> tuple[list[dict[str, int]], str]:
    from routing.staffing import plan_staffing, split_agents, staffing_from_dict

    value: str = args.staffing
    if value == "auto":
        return plan_staffing(profile, _targets(args)).by_skill(), "auto"
    if value.isdigit():
        flat = split_agents(int(value), profile.skill_shares())
        return [dict(flat) for _ in profile.hourly_calls], f"{value} agents every hour"
    advice = "give auto, a number of agents, or a file written by staffing --json"
    try:
        data = json.loads(Path(value).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"--staffing {value}: {exc.strerror or exc}: {advice}") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"--staffing {value}: not JSON ({reason}): {advice}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{value}: expected the JSON object of 'staffing --json'")
    return staffing_from_dict(data, profile), value


def _emit(args: argparse.Namespace, result: dict[str, Any], table: Any) -> None:
    text = json.dumps(result, ensure_ascii=False, indent=None if args.json else 2)
    if args.output:
        from cti.errors import OutputError

        try:
            args.output.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise OutputError("--output", args.output, exc.strerror or str(exc)) from None
    print(text if args.json else table(result))


def _simulation_table(r: dict[str, Any]) -> str:
    head = (
        f"{'hour':>4} {'agents':>6} {'offered':>7} {'answered':>8} {'abandon':>7} "
        f"{'answer':>7} {'in 15s':>7} {'ASA s':>6} {'abnd s':>6} {'occup':>6}"
    )
    rows = [head]
    for h in [*r["hours"], {**r, "hour": "day", "agents": r["agent_hours"]}]:
        rows.append(
            f"{h['hour']:>4} {h['agents']:>6} {h['offered']:>7} {h['answered']:>8} "
            f"{h['abandoned']:>7} {h['answer_rate']:>7.1%} {h['service_level_15s']:>7.1%} "
            f"{h['asa_s']:>6.1f} {h['avg_abandon_s']:>6.1f} {h['occupancy']:>6.1%}"
        )
    rows.append(f"offers by reason: {r['reasons']}; leader calls: {r['leader_calls']}")
    rows.append(f"staffing: {r['staffing']}")
    return "\n".join(rows)


def _staffing_table(r: dict[str, Any]) -> str:
    skills = list(r["hours"][0]["by_skill"]) if r["hours"] else []
    head = f"{'hour':>4} {'calls':>7} {'agents':>6} " + " ".join(f"{s[:8]:>8}" for s in skills)
    head += f" {'answer':>7} {'in 15s':>7} {'ASA s':>6} {'occup':>6}"
    rows = [head]
    for h in r["hours"]:
        rows.append(
            f"{h['hour']:>4} {h['calls']:>7.0f} {h['agents']:>6} "
            + " ".join(f"{h['by_skill'][s]:>8}" for s in skills)
            + f" {h['answer_rate']:>7.1%} {h['service_level_15s']:>7.1%}"
            f" {h['asa_s']:>6.1f} {h['occupancy']:>6.1%}"
        )
    rows.append(
        f"day: {r['calls']:.0f} calls, {r['agent_hours']} agent-hours, predicted answered "
        f"{r['answer_rate']:.2%}, within {r['targets']['threshold_s']:.0f} s "
        f"{r['service_level_15s']:.2%} ({r['model']})"
    )
    return "\n".join(rows)

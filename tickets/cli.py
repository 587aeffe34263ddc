"""``hotline report --period 2026-10 [--json] [--csv-dir DIR] [--chart] [--config F] [--db URL]``

Prints the KPI table (or, with ``--json``, a JSON array with one object per department, the
hotline as a whole first) and writes CSV files: always in text mode (to ``--csv-dir``,
default the current directory), in JSON mode only when ``--csv-dir`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from tickets.settings import TicketSettings


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="KPIs per department, repeat callers, hotspots")
    p.add_argument("--period", required=True, help="2026-10, 2026-Q4, 2026-W41 or 2026")
    p.add_argument("--json", action="store_true", help="print JSON: one object per department")
    p.add_argument("--csv-dir", type=Path, default=None, help="where the CSV files go")
    p.add_argument("--chart", action="store_true", help="also write the hotspot chart (PNG)")
    p.add_argument("--config", help="TOML configuration (or $HOTLINE_CONFIG)")
    p.add_argument("--db", help="database URL (overrides the configuration)")
    p.add_argument("--as-of", help="count deadlines only up to this ISO time (default: now)")
    p.set_defaults(func=cmd_report)


def _settings(args: argparse.Namespace) -> tuple[TicketSettings, str]:
    # The central configuration (cti.config) includes [tickets] and [database].
    config_mod: Any = importlib.import_module("cti.config")
    settings = config_mod.load(getattr(args, "config", None))
    return settings.tickets, str(args.db or settings.database.url)


def cmd_report(args: argparse.Namespace) -> int:
    from cti.db import make_engine
    from cti.errors import ConfigError
    from tickets.hotspots import write_chart
    from tickets.reports import build_report, format_text, parse_period, to_json, write_csv

    try:
        settings, url = _settings(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        period = parse_period(args.period, settings.timezone)
        as_of = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now().astimezone()
        if as_of.tzinfo is None:
            as_of = as_of.astimezone()
    except ValueError as exc:
        print(f"hotline report: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            report = build_report(conn, period, settings, as_of=as_of)
    finally:
        engine.dispose()
    written: list[Path] = []
    csv_dir = args.csv_dir if args.csv_dir is not None else (None if args.json else Path("."))
    if csv_dir is not None:
        written = write_csv(report, csv_dir)
        if args.chart:
            written.append(write_chart(report.hotspots, csv_dir / f"hotspots-{period.label}.png"))
    if args.json:
        print(json.dumps(to_json(report), ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(format_text(report))
        for path in written:
            print(f"wrote {path}")
    return 0

"""``hotline report --period 2026-10 [--json] [--csv-dir DIR] [--chart] [--config F] [--db URL]``

Prints the KPI table (or, with ``--json``, a JSON array with one object per department, the
hotline as a whole first); with ``--csv-dir`` also writes the CSV files there (and, with
``--chart``, the hotspot chart). The database is the configuration's (by default
``var/hotline.db`` of the working directory, where ``hotline demo`` and ``serve`` write) or
``--db``; it is only read: a database that does not exist is an error, not a new empty file.
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
    p.add_argument(
        "--chart", action="store_true", help="also write the hotspot chart (PNG) to --csv-dir"
    )
    p.add_argument("--config", help="TOML configuration (or $HOTLINE_CONFIG)")
    p.add_argument("--db", help="database URL (overrides the configuration)")
    p.add_argument("--as-of", help="count deadlines only up to this ISO time (default: now)")
    p.set_defaults(func=cmd_report)


def _settings(args: argparse.Namespace) -> tuple[TicketSettings, str]:
    # The central configuration (cti.config) includes [tickets] and [database].
    config_mod: Any = importlib.import_module("cti.config")
    settings = config_mod.load(getattr(args, "config", None))
    return settings.tickets, str(args.db or settings.database.url)


def _as_of(text: str | None) -> datetime:
    if not text:
        return datetime.now().astimezone()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--as-of {text!r} is not an ISO time: write e.g. 2026-10-31T18:00+08:00"
        ) from None


def cmd_report(args: argparse.Namespace) -> int:
    from cti.db import open_database
    from cti.errors import CommandError, ConfigError, OutputError
    from tickets.hotspots import write_chart
    from tickets.reports import build_report, format_text, parse_period, to_json, write_csv

    try:
        settings, url = _settings(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        period = parse_period(args.period, settings.timezone)
        as_of = _as_of(args.as_of)
        if as_of.tzinfo is None:
            as_of = as_of.astimezone()
    except ValueError as exc:
        print(f"hotline report: {exc}", file=sys.stderr)
        return 2
    csv_dir = args.csv_dir
    if args.chart and csv_dir is None:
        raise CommandError("--chart writes the chart beside the CSV files: give --csv-dir DIR.")
    if csv_dir is not None:
        OutputError.check("--csv-dir", csv_dir, directory=True)
    engine = open_database(
        url,
        key="--db" if args.db else "database.url",
        create=False,
        needs="tickets",
        missing="run hotline demo or hotline serve in this directory first, or point --config"
        " or --db at the site's database",
    )
    try:
        with engine.connect() as conn:
            report = build_report(conn, period, settings, as_of=as_of)
    finally:
        engine.dispose()
    written: list[Path] = []
    if csv_dir is not None:
        try:
            written = write_csv(report, csv_dir)
            if args.chart:
                chart = csv_dir / f"hotspots-{period.label}.png"
                written.append(write_chart(report.hotspots, chart))
        except OSError as exc:
            raise OutputError("--csv-dir", csv_dir, exc.strerror or str(exc)) from None
    if args.json:
        print(json.dumps(to_json(report), ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(format_text(report))
        for path in written:
            print(f"wrote {path}")
    return 0

"""Every subcommand given missing, malformed and hostile input ends in a sentence that names
the problem (the file, the option, the URL with its password masked), a non-zero exit status
and no traceback.

Each case runs the installed ``hotline`` in a directory of its own; the cases run side by side
(one module-wide batch), and each test reads its case's result."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import Run, free_port, hotline, site_config

PASSWORD = "pw-9dK3-secret"  # in the URLs below: no message may show it


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    argv: tuple[str, ...]
    says: tuple[str, ...]  # what the message must name, in order of appearance
    code: int = 2
    stdin: str = ""
    leaves_no: tuple[str, ...] = ()  # files the command must not create in its directory


def cases(r: dict[str, str]) -> list[Case]:
    """``r``: the resources the cases name (absolute paths, URLs)."""
    pg_down = f"postgresql://hotline:{PASSWORD}@127.0.0.1:{r['port']}/hotline"
    shown = f"postgresql://hotline:***@127.0.0.1:{r['port']}/hotline"
    return [
        # --- report -------------------------------------------------------------------
        Case(
            "report-fresh-directory",
            ("report", "--period", "2026-12"),
            (
                "hotline report: database.url: the database var/hotline.db does not exist",
                "run hotline demo",
            ),
            leaves_no=("var/hotline.db",),
        ),  # fmt: skip
        Case(
            "report-missing-sqlite",
            ("report", "--period", "2026-12", "--db", "sqlite:///missing.db"),
            ("--db: the database missing.db does not exist",),
            leaves_no=("missing.db",),
        ),
        Case(
            "report-path-for-url",
            ("report", "--period", "2026-12", "--db", "x.db"),
            ("--db: 'x.db' is a file name, not a database URL: write sqlite:///x.db.",),
            leaves_no=("x.db",),
        ),
        Case(
            "report-server-down",
            ("report", "--period", "2026-12", "--db", pg_down),
            (f"--db: cannot open {shown} (", "start the database server"),
        ),
        Case(
            "report-empty-database",
            ("report", "--period", "2026-12", "--db", f"sqlite:///{r['empty_db']}"),
            ("has no hotline tables yet",),
        ),
        Case(
            "report-bad-period",
            ("report", "--period", "'; DROP TABLE tickets; --"),
            ("is not a period: write 2026-10",),
        ),
        Case(
            "report-bad-as-of",
            ("report", "--period", "2026-12", "--as-of", "yesterday"),
            ("--as-of 'yesterday' is not an ISO time",),
        ),
        Case(
            "report-csv-dir-is-a-file",
            ("report", "--period", "2026-12", "--csv-dir", r["file"]),
            (f"--csv-dir {r['file']}: not a directory",),
        ),
        Case(
            "report-csv-dir-under-a-file",
            ("report", "--period", "2026-12", "--csv-dir", f"{r['file']}/csv"),
            (f"--csv-dir {r['file']}/csv: {r['file']} is not a directory",),
        ),
        Case(
            "report-chart-without-csv-dir",
            ("report", "--period", "2026-12", "--chart"),
            ("--chart writes the chart beside the CSV files: give --csv-dir DIR.",),
        ),
        Case(
            "report-config-not-toml",
            ("report", "--period", "2026-12", "--config", r["binary"]),
            (f"invalid configuration in {r['binary']}", "not valid TOML"),
        ),
        Case(
            "report-config-missing",
            ("report", "--period", "2026-12", "--config", "nowhere/hotline.toml"),
            ("file not found: nowhere/hotline.toml",),
        ),
        # --- simulate, staffing -------------------------------------------------------
        Case(
            "simulate-negative-answer-delay",
            ("simulate", "--answer-delay", "-1"),
            ("argument --answer-delay: -1: must be from 0 to 600",),
        ),
        Case(
            "simulate-answer-delay-not-a-number",
            ("simulate", "--answer-delay", "nan"),
            ("argument --answer-delay: nan: must be from 0 to 600",),
        ),
        Case(
            "simulate-chart-under-a-file",
            ("simulate", "--chart", f"{r['file']}/day.png"),
            (f"--chart {r['file']}/day.png: {r['file']} is not a directory",),
        ),
        Case(
            "simulate-output-unwritable",
            ("simulate", "--output", "/proc/hotline/day.json"),
            ("--output /proc/hotline/day.json: ", "choose a directory that exists"),
        ),
        Case(
            "simulate-output-is-a-directory",
            ("simulate", "--output", r["dir"]),
            (f"--output {r['dir']}: a directory, not a file",),
        ),
        Case(
            "simulate-unknown-profile",
            ("simulate", "--profile", "nosuch"),
            ("no profile 'nosuch' (shipped: ",),
        ),
        Case(
            "simulate-staffing-missing",
            ("simulate", "--staffing", "nosuch.json"),
            ("--staffing nosuch.json: No such file or directory: give auto",),
        ),
        Case(
            "simulate-staffing-not-json",
            ("simulate", "--staffing", r["file"]),
            (f"--staffing {r['file']}: not JSON (",),
        ),
        Case(
            "staffing-output-under-a-file",
            ("staffing", "--output", f"{r['file']}/plan.json"),
            (f"--output {r['file']}/plan.json: {r['file']} is not a directory",),
        ),
        Case(
            "staffing-service-level-above-one",
            ("staffing", "--service-level", "2"),
            ("argument --service-level: 2: must be from 0 to 1",),
        ),
        # --- seats --------------------------------------------------------------------
        Case(
            "seats-provisioning-output-dir-is-a-file",
            ("seats", "provisioning", "--sip-server", "10.0.0.1", "--output-dir", r["file"]),
            (f"--output-dir {r['file']}: not a directory",),
        ),
        Case(
            "seats-pjsip-output-under-a-file",
            ("seats", "pjsip", "--output", f"{r['file']}/pjsip_seats.conf"),
            (f"--output {r['file']}/pjsip_seats.conf: {r['file']} is not a directory",),
        ),
        Case(
            "seats-list-config-is-a-directory",
            ("seats", "list", "--config", r["dir"]),
            (f"invalid configuration in {r['dir']}", "Is a directory"),
        ),
        # --- transcribe ---------------------------------------------------------------
        Case(
            "transcribe-not-a-model",
            ("transcribe", "--model", r["dir"], r["file"]),
            (
                f"hotline transcribe: {r['dir']} is not a vosk model (it has no am/final.mdl)",
                "vosk-model-cn-0.22",
            ),
        ),  # fmt: skip
        Case(
            "transcribe-without-model",
            ("transcribe", r["file"]),
            ("hotline transcribe: no vosk model: pass --model DIR or set [transcription] model",),
        ),
        Case(
            "transcribe-model-missing",
            ("transcribe", "--model", "/nowhere/model", r["file"]),
            ("transcription.model: no such directory '/nowhere/model'",),
        ),
        Case(
            "worker-not-a-model",
            ("transcribe-worker", "--model", r["dir"], "--workers", "2", "--once"),
            (f"hotline transcribe-worker: {r['dir']} is not a vosk model",),
        ),
        Case(
            "worker-without-model",
            ("transcribe-worker", "--workers", "2", "--once"),
            ("hotline transcribe-worker: no vosk model",),
        ),
        Case(
            "worker-server-down",
            ("transcribe-worker", "--engine", "nosuch:engine", "--db", pg_down, "--once"),
            (f"--db: cannot open {shown} (",),
        ),
        # --- db, config, serve --------------------------------------------------------
        Case(
            "db-upgrade-server-down",
            ("db", "upgrade", "--config", r["pg_down_toml"]),
            (
                f"hotline db upgrade: database.url: cannot open {shown} (",
                "start the database server",
            ),
        ),  # fmt: skip
        Case(
            "db-upgrade-malformed-url",
            ("db", "upgrade", "--config", r["malformed_toml"]),
            ("database.url: 'postgresql://hotline:***@db:port/hotline' is not a database URL",),
        ),
        Case(
            "config-check-server-down",
            ("config", "check", "--config", r["pg_down_toml"]),
            (f"database.url: cannot open {shown} (",),
        ),
        Case(
            "config-check-bad-logging",
            ("config", "check", "--config", r["bad_logging_toml"]),
            (f"invalid configuration in {r['bad_logging_toml']}", "logging.format: "),
        ),
        Case(
            "serve-without-configuration",
            ("serve",),
            (
                "hotline serve: no configuration: pass --config FILE or set $HOTLINE_CONFIG",
                "the built-in defaults are for hotline demo only",
            ),
        ),  # fmt: skip
        Case(
            "config-check-without-configuration",
            ("config", "check"),
            ("hotline config check: no configuration: pass --config FILE",),
        ),
        Case(
            "serve-example-secrets",
            ("serve", "--config", r["example_secrets_toml"]),
            ("asterisk[0].secret: line 5: the example's placeholder",),
        ),
        # --- users --------------------------------------------------------------------
        Case(
            "users-add-unknown-agent",
            (
                "users",
                "add",
                "bob",
                "--role",
                "agent",
                "--agent-id",
                "nosuch",
                "--password-stdin",
                "--config",
                r["site_toml"],
            ),
            (
                "hotline users add: --agent-id 'nosuch' is not in the configuration"
                " (its [[agents]] are: li)",
            ),
            stdin="long-enough-pw\n",
        ),  # fmt: skip
        Case(
            "users-add-unknown-window",
            (
                "users",
                "add",
                "w",
                "--role",
                "window",
                "--window-id",
                "nosuch",
                "--password-stdin",
                "--config",
                r["site_toml"],
            ),
            ("--window-id 'nosuch' is not in the configuration (its [[windows]] are: shebao)",),
            stdin="long-enough-pw\n",
        ),  # fmt: skip
        Case(
            "users-add-agent-without-id",
            (
                "users",
                "add",
                "bob",
                "--role",
                "agent",
                "--password-stdin",
                "--config",
                r["site_toml"],
            ),
            ("hotline users add: agents and leaders need --agent-id.",),
            stdin="long-enough-pw\n",
        ),  # fmt: skip
        Case(
            "users-passwd-too-short",
            ("users", "passwd", "li", "--password-stdin", "--config", r["site_toml"]),
            ("hotline users passwd: passwords have at least 8 characters.",),
            stdin="short\n",
        ),
        Case(
            "users-disable-nobody",
            ("users", "disable", "nosuch", "--config", r["site_toml"]),
            ("hotline users disable: no user 'nosuch'.",),
        ),
        Case(
            "users-list-server-down",
            ("users", "list", "--config", r["pg_down_toml"]),
            (f"hotline users list: database.url: cannot open {shown} (",),
        ),
        Case(
            "seats-pjsip-secrets-readable-by-all",
            ("seats", "pjsip", "--secrets", r["file"]),
            (f"hotline seats pjsip: {r['file']} is accessible to other users", "chmod 600"),
        ),
        # --- demo, the parser ---------------------------------------------------------
        Case("demo-negative-calls", ("demo", "--calls", "-3"), ("--calls -3: give a number",)),
        Case(
            "demo-path-for-url",
            ("demo", "--db", "demo.db", "--no-browser"),
            ("--db: 'demo.db' is a file name, not a database URL: write sqlite:///demo.db.",),
        ),
        Case(
            "demo-port-in-use",
            ("demo", "--calls", "1", "--no-browser", "--port", r["busy_port"]),
            (f"hotline demo: --port {r['busy_port']}: in use by another process",),
            leaves_no=("var",),
        ),
        Case("no-such-command", ("frobnicate",), ("invalid choice: 'frobnicate'",)),
        # --- what nobody planned for: the one sentence naming the log file -------------
        Case(
            "unexpected-error",
            ("report", "--period", "2026-12", "--db", f"sqlite:///{r['odd_db']}"),
            (
                "hotline report: unexpected error (OperationalError: ",
                "the details are in var/log/hotline.log",
            ),
            code=1,
        ),  # fmt: skip
    ]


@pytest.fixture(scope="module")
def resources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    base = tmp_path_factory.mktemp("inputs")
    busy = socket.create_server(("127.0.0.1", 0))  # a port somebody listens on
    (base / "plain.txt").write_text("not what any command wants\n", encoding="utf-8")
    (base / "folder").mkdir()
    (base / "binary.toml").write_bytes(b"\xff\xfe\x00\x01garbage")
    sqlite3.connect(base / "empty.db").close()
    odd = sqlite3.connect(base / "odd.db")  # a tickets table, but not ours
    odd.execute("CREATE TABLE tickets (x)")
    odd.commit()
    odd.close()
    port = free_port()
    pg_down = f"postgresql://hotline:{PASSWORD}@127.0.0.1:{port}/hotline"
    example_secrets = site_config(
        base / "example-secrets.toml", "sqlite:///x.db", secret="cti-secret"
    )
    bad_logging = site_config(base / "bad-logging.toml", "sqlite:///var/hotline.db")
    with bad_logging.open("a", encoding="utf-8") as fh:
        fh.write('\n[logging]\nformat = "xml"\n')
    yield {
        "bad_logging_toml": str(bad_logging),
        "busy_port": str(busy.getsockname()[1]),
        "file": str(base / "plain.txt"),
        "dir": str(base / "folder"),
        "binary": str(base / "binary.toml"),
        "empty_db": str(base / "empty.db"),
        "odd_db": str(base / "odd.db"),
        "port": str(port),
        "pg_down_toml": str(site_config(base / "pg-down.toml", pg_down)),
        "malformed_toml": str(
            site_config(base / "malformed.toml", f"postgresql://hotline:{PASSWORD}@db:port/hotline")
        ),
        "example_secrets_toml": str(example_secrets),
        # relative: each case's own directory
        "site_toml": str(site_config(base / "site.toml", "sqlite:///var/site.db")),
    }
    busy.close()


@pytest.fixture(scope="module")
def results(
    resources: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Case, Run, Path]]:
    """Every case, each in a fresh directory, run side by side."""
    root = tmp_path_factory.mktemp("runs")

    def run(case: Case) -> tuple[Case, Run, Path]:
        where = root / case.id
        where.mkdir()
        return case, hotline(*case.argv, cwd=where, stdin=case.stdin), where

    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(run, cases(resources)))
    return {case.id: (case, result, where) for case, result, where in done}


RESOURCES = ("busy_port", "file", "dir", "binary", "empty_db", "odd_db", "port", "pg_down_toml")
RESOURCES += ("bad_logging_toml", "malformed_toml", "example_secrets_toml", "site_toml")


@pytest.mark.parametrize("case_id", [c.id for c in cases(dict.fromkeys(RESOURCES, "x"))])
def test_one_sentence_no_traceback(
    case_id: str, results: dict[str, tuple[Case, Run, Path]]
) -> None:
    case, run, where = results[case_id]
    assert "Traceback" not in run.text, run.text
    assert run.code == case.code, run.text
    position = 0
    for fragment in case.says:
        found = run.err.find(fragment, position)
        assert found >= 0, f"{fragment!r} not in:\n{run.err}"
        position = found + len(fragment)
    assert PASSWORD not in run.text
    for name in case.leaves_no:
        assert not (where / name).exists(), name


def test_the_unexpected_error_is_in_the_log_file(
    results: dict[str, tuple[Case, Run, Path]],
) -> None:
    """What nobody planned for: the traceback is in the log file, not on the terminal."""
    _, run, where = results["unexpected-error"]
    logged = (where / "var" / "log" / "hotline.log").read_text(encoding="utf-8")
    assert "hotline report: unexpected error" in logged
    assert "Traceback (most recent call last)" in logged
    assert "no such column" in logged and "no such column" in run.err
    assert len(run.err.strip().splitlines()) == 1

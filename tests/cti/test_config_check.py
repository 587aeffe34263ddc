"""``hotline config check`` runs what ``hotline serve`` checks before it starts
(``cti.preflight``): a configuration it passes starts, one it refuses gets one sentence per
problem naming the key, exit status 2 and no traceback.

Each configuration is ``config/example.toml`` with its machine-specific paths moved into the
test's directory and the listed changes made."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cti import cli, preflight
from cti.config import load
from cti.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example.toml"


def set_key(text: str, section: str, key: str, value: str) -> str:
    """``key = value`` in the first ``[section]`` (or ``[[section]]``) of the TOML text."""
    header = re.search(rf"^\[\[?{re.escape(section)}\]\]?\s*$", text, re.M)
    assert header, section
    line = re.compile(rf"^{re.escape(key)}\s*=.*$", re.M)
    match = line.search(text, header.end())
    assert match, (section, key)
    return text[: match.start()] + f"{key} = {value}" + text[match.end() :]


def example(tmp: Path, *, secrets: bool = True) -> str:
    """The example with every path it names in ``tmp`` and ports the system picks, and (with
    ``secrets``) its placeholder secrets replaced by random ones, as a site does."""
    text = EXAMPLE.read_text(encoding="utf-8")
    if secrets:
        import secrets as random

        for section, key in (("console", "secret_key"), ("console", "metrics_token"),
                             ("asterisk", "secret"), ("sms", "auth_token")):  # fmt: skip
            text = set_key(text, section, key, f'"{random.token_urlsafe(32)}"')
    for section, key, value in (
        ("database", "url", f'"sqlite:///{tmp}/var/hotline.db"'),
        ("asterisk", "cdr_path", '""'),
        ("agi", "port", "0"),
        ("console", "port", "0"),
        ("console", "kb_path", '""'),
        ("recordings", "dir", f'"{tmp}/var/recordings"'),
        ("tickets", "calendar_override", f'"{ROOT}/config/calendar"'),
        ("tickets", "attachments_dir", f'"{tmp}/var/attachments"'),
    ):
        text = set_key(text, section, key, value)
    return text


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(["config", "check", "--config", str(path)])
    out, err = capsys.readouterr()
    return status, out, err


def refused(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The problems ``config check`` names (it must refuse the file)."""
    status, out, err = check(path, capsys)
    assert status == 2, out
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert lines[0] == f"invalid configuration in {path}:"
    problems = [line.strip() for line in lines[1:]]
    for problem in problems:  # one sentence each, naming the key
        assert re.match(r"^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*: ", problem), problem
        assert problem.endswith("."), problem
    return problems


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return tmp_path / "site"


@pytest.fixture
def base(site: Path) -> str:
    site.mkdir()
    return example(site)


# --- a configuration that passes starts ----------------------------------------------------


def test_example_passes_and_starts(
    base: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(site / "hotline.toml", base)
    status, out, err = check(path, capsys)
    assert status == 0, err
    assert '"ok": true' in out
    # serve's own start-up validation, then what Hotline builds from the configuration
    # (routing plan, calendar, ticket numbers, windows, knowledge base), not started.
    settings = load(path)
    assert preflight.validate(settings, str(path), starting=True) == []
    from console.app import create_app
    from cti.app import Hotline

    hotline = Hotline(settings)
    try:
        create_app(hotline)
    finally:
        hotline.engine.dispose()


def test_serve_refuses_what_config_check_refuses(base: str, site: Path) -> None:
    """The real command line: one sentence on stderr, exit status 2, no traceback, and
    ``serve`` stops before it starts anything."""
    text = set_key(base, "console", "kb_path", '"missing-kb.json"')
    path = write(site / "hotline.toml", text)
    for command in ("config check", "serve"):
        proc = subprocess.run(
            [sys.executable, "-m", "cti.cli", *command.split(), "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert proc.stderr.splitlines()[1:] == [
            f"  console.kb_path: {site}/missing-kb.json does not exist: create it, correct the"
            " path (relative names are read from the configuration file's directory) or set"
            ' kb_path = "" for the shipped sample.'
        ]
    assert not (site / "var").exists()  # nothing was created


# --- the gaps found on a real site ----------------------------------------------------------


def test_duplicate_did(base: str, site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = base.replace('did = "96345"', 'did = "12315"')
    assert refused(write(site / "h.toml", text), capsys) == [
        "hotlines[2].did: DID '12315' is configured twice: give each [[hotlines]] its own did."
    ]


def test_leader_shift_of_unknown_agent(
    base: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = set_key(base, "leader_shifts", "agent", '"governor"')
    assert refused(write(site / "h.toml", text), capsys) == [
        "leader_shifts[0].agent: leader shift names unknown agent 'governor': add that agent to"
        " [[agents]] with leader = true, or correct the name."
    ]


def test_every_routing_contradiction_is_named(
    base: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = base.replace('did = "96345"', 'did = "12345"')
    text = set_key(text, "leader_shifts", "agent", '"li"')
    text += (
        '\n[[leader_shifts]]\nagent = "mayor"\nseat = "8002"\n'
        'start = "2026-12-01T08:00:00+08:00"\nend = "2026-12-01T10:00:00+08:00"\n'
        'topics = ["综合咨询"]\n'
        '\n[[leader_shifts]]\nagent = "mayor"\nseat = "8002"\n'
        'start = "2026-12-01T09:30:00+08:00"\nend = "2026-12-01T10:30:00+08:00"\n'
        'topics = ["综合咨询"]\n'
    )
    assert refused(write(site / "h.toml", text), capsys) == [
        "hotlines[2].did: DID '12345' is configured twice: give each [[hotlines]] its own did.",
        "leader_shifts[0].agent: agent 'li' has a leader shift but leader = false: set"
        " leader = true on that agent, or remove the shift.",
        "leader_shifts[2].start: leader shifts of 'mayor' overlap: move this shift off the"
        " agent's other shifts.",
    ]


def test_missing_calendar_override(
    base: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = set_key(base, "tickets", "calendar_override", '"calendar/2027.toml"')
    assert refused(write(site / "h.toml", text), capsys) == [
        f"tickets.calendar_override: {site}/calendar/2027.toml does not exist: create it,"
        " correct the path (relative names are read from the configuration file's directory)"
        ' or set calendar_override = "" for none.'
    ]


def test_malformed_calendar_override(
    base: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "2027.toml").write_text('[2027]\nholidays = ["2027-02-30"]\n', encoding="utf-8")
    text = set_key(base, "tickets", "calendar_override", '"2027.toml"')
    [problem] = refused(write(site / "h.toml", text), capsys)
    assert problem.startswith(f"tickets.calendar_override: {site}/2027.toml: [2027].holidays:")
    assert problem.endswith("correct the file (format in tickets/calendar.py).")


def test_calendar_override_not_a_table(
    base: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "2027.json").write_text('["2027-02-11"]', encoding="utf-8")
    text = set_key(base, "tickets", "calendar_override", '"2027.json"')
    [problem] = refused(write(site / "h.toml", text), capsys)
    assert problem.startswith(f"tickets.calendar_override: {site}/2027.json: not a calendar (")


def test_calendar_override_relative_to_the_configuration(
    base: str, site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "calendar").mkdir()
    (site / "calendar" / "2027.toml").write_text("[2027]\nworkdays = []\n", encoding="utf-8")
    path = write(site / "h.toml", set_key(base, "tickets", "calendar_override", '"calendar"'))
    with working_directory(tmp_path):  # not the configuration's directory
        status, _, err = check(path, capsys)
        assert status == 0, err
        assert load(path).tickets.calendar_override == site / "calendar"


def test_empty_calendar_override_is_none(
    base: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not the working directory, whose TOML files (the configuration itself) are no
    calendar."""
    path = write(site / "h.toml", set_key(base, "tickets", "calendar_override", '""'))
    with working_directory(site):
        status, _, err = check(path, capsys)
        assert status == 0, err
        assert load(path).tickets.calendar_override is None


def test_missing_knowledge_base(base: str, site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = set_key(base, "console", "kb_path", '"/nonexistent/kb.json"')
    assert refused(write(site / "h.toml", text), capsys) == [
        "console.kb_path: /nonexistent/kb.json does not exist: create it, correct the path"
        " (relative names are read from the configuration file's directory) or set"
        ' kb_path = "" for the shipped sample.'
    ]


def test_knowledge_base_relative_and_malformed(
    base: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "kb.json").write_text('[{"id": 1, "title": "x"}]', encoding="utf-8")
    text = set_key(base, "console", "kb_path", '"kb.json"')
    assert refused(write(site / "h.toml", text), capsys) == [
        f"console.kb_path: {site}/kb.json: article 0: missing 'body': correct the file"
        " (a JSON list of articles with id, title and body)."
    ]
    (site / "kb.json").write_text('[{"id": 1, "title": "x", "body": "y"}]', encoding="utf-8")
    assert check(site / "h.toml", capsys)[0] == 0


# --- the other checks serve makes at start --------------------------------------------------


def test_time_zones(base: str, site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = set_key(base, "site", "timezone", '"Asia/Beijing"')
    assert refused(write(site / "h.toml", text), capsys) == [
        "site.timezone: unknown time zone 'Asia/Beijing': write e.g. 'Asia/Shanghai'."
    ]
    text = set_key(base, "recordings", "timezone", '"Asia/Beijing"')
    assert refused(write(site / "h.toml", text), capsys) == [
        "recordings.timezone: unknown time zone 'Asia/Beijing': write e.g. 'Asia/Shanghai'."
    ]


def test_duplicate_window_and_department(
    base: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = base + '\n[[windows]]\nid = "shebao"\nname = "社保窗口二"\n'
    assert refused(write(site / "h.toml", text), capsys) == [
        "windows[1].id: duplicate window id 'shebao': give each [[windows]] its own id."
    ]
    text = base + '\n[[departments]]\nid = "zjj"\nname = "住建局"\n'
    assert refused(write(site / "h.toml", text), capsys) == [
        "departments: duplicate id ['zjj']: give each [[departments]] entry its own id."
    ]


def test_database(base: str, site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = set_key(base, "database", "url", '"mysql+nosuchdriver://u:secret@db/hotline"')
    [problem] = refused(write(site / "h.toml", text), capsys)
    assert problem.startswith("database.url: cannot use mysql+nosuchdriver (")
    assert "secret" not in problem
    (site / "not-a-db").write_text("hello\n" * 100, encoding="utf-8")
    text = set_key(base, "database", "url", f'"sqlite:///{site}/not-a-db"')
    assert refused(write(site / "h.toml", text), capsys) == [
        f"database.url: cannot open sqlite:///{site}/not-a-db (file is not a database):"
        " point the URL at a SQLite database file."
    ]


def test_database_server_unreachable(
    base: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    url = f"postgresql://hotline:secret@127.0.0.1:{port}/hotline"
    text = set_key(base, "database", "url", f'"{url}"')
    [problem] = refused(write(site / "h.toml", text), capsys)
    assert problem.startswith(
        f"database.url: cannot open postgresql://hotline:***@127.0.0.1:{port}/hotline ("
    )
    assert problem.endswith(
        "): start the database server or correct the URL's host, port, user, password and name."
    )


def test_unwritable_directories(base: str, site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = site / "locked"
    locked.mkdir()
    text = set_key(base, "database", "url", f'"sqlite:///{locked}/db/hotline.db"')
    text = set_key(text, "recordings", "dir", f'"{locked}/recordings"')
    path = write(site / "h.toml", text)
    with read_only(locked):
        problems = refused(path, capsys)
    user = preflight._user()
    assert problems == [
        f"database.url: {locked} (to create {locked}/db in) is not writable by {user}: give"
        " that user write access or choose another directory.",
        f"recordings.dir: {locked} (to create {locked}/recordings in) is not writable by"
        f" {user}: give that user write access or choose another directory.",
    ]


def test_listening_address(base: str, site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = set_key(base, "agi", "host", '"192.0.2.1"')  # TEST-NET-1: nobody's address
    assert refused(write(site / "h.toml", text), capsys) == [
        "agi.host: 192.0.2.1 is not an address of this machine: use one of its addresses,"
        " or 0.0.0.0 for all."
    ]


def test_port_in_use_stops_serve_but_not_the_check(base: str, site: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = write(site / "h.toml", set_key(base, "agi", "port", str(port)))
        settings = load(path)
        message = (
            f"agi.port: {port} on 127.0.0.1 is in use by another process (a running hotline"
            " serve?): stop it or choose another port."
        )
        assert preflight.validate(settings) == [message]
        with pytest.raises(ConfigError) as refusal:
            preflight.validate(settings, starting=True)
        assert refusal.value.problems == [message]


# --- helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """A directory this process cannot write in: its mode, or for root (whom modes do not
    stop) the immutable attribute."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)]).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

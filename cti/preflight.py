"""What ``hotline serve`` needs of its configuration before it starts, checked in one place.

``hotline config check`` runs the same ``check()``, so a configuration it passes does not stop
``serve`` at start. ``cti.config.load`` checks each key on its own; this checks the parts as a
whole and against this machine, by running the code ``serve`` runs at start wherever it can
(the routing plan, the service windows, the calendar override, the knowledge base, the
database), and each problem becomes one sentence that names the key and says what to do.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cti.config import ConsoleSettings, Settings, mask_url
from cti.errors import ConfigError


@dataclass(slots=True)
class Findings:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def validate(settings: Settings, source: str = "", *, starting: bool = False) -> list[str]:
    """Raise ``ConfigError`` with every problem; return the warnings.

    ``starting``: ``serve`` is about to listen on its ports, so a port in use is a problem;
    for ``config check`` (perhaps while the CTI runs) it is a warning."""
    findings = check(settings, starting=starting)
    if findings.problems:
        raise ConfigError(_with_lines(findings.problems, source), source)
    return findings.warnings


# Keys whose problem is a secret to change: the sentence says on which line of the file.
SECRET_KEYS = frozenset({"secret", "secret_key", "metrics_token", "auth_token", "url", "token"})


def _with_lines(problems: list[str], source: str) -> list[str]:
    """``problems`` with ``key: line N: ...`` for the secrets, when ``source`` is a file."""
    try:
        text = Path(source).read_text(encoding="utf-8") if source else ""
    except (OSError, UnicodeDecodeError):
        return problems
    out = []
    for problem in problems:
        key, sep, rest = problem.partition(": ")
        line = key_line(text, key) if sep and key.rsplit(".", 1)[-1] in SECRET_KEYS else None
        if key == "database.url" and "placeholder" not in rest:
            line = None
        out.append(f"{key}: line {line}: {rest}" if line else problem)
    return out


def key_line(text: str, path: str) -> int | None:
    """The line (from 1) of the TOML ``text`` that sets the key ``path``, e.g.
    ``asterisk[0].secret`` or ``console.secret_key``; None for a key set otherwise (inline
    tables, dotted keys) or not at all."""
    match = re.fullmatch(r"(?:(.+?)(?:\[(\d+)\])?\.)?([A-Za-z0-9_-]+)", path)
    if match is None:
        return None
    table, index, key = match[1] or "", match[2], match[3]
    want = (table, int(index) if index is not None else None)
    counts: dict[str, int] = {}
    here: tuple[str, int | None] = ("", None)
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?", line)
        if header:
            name = header[2]
            if header[1] == "[[":
                counts[name] = counts.get(name, -1) + 1
                here = (name, counts[name])
            else:
                here = (name, None)
            continue
        setting = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", line)
        if setting and setting[1] == key and here == want:
            return number
    return None


def check(settings: Settings, *, starting: bool = False) -> Findings:
    found = Findings()
    secrets = _secrets(settings)
    found.problems += secrets.problems
    found.warnings += secrets.warnings
    found.problems += _routing_plan(settings)
    found.problems += _windows(settings)
    found.problems += _time_zones(settings)
    found.problems += _calendar(settings)
    found.problems += _knowledge_base(settings)
    found.problems += _database(settings.database.url)
    found.problems += _directories(settings)
    for key, host, port in (
        ("agi", settings.agi.host, settings.agi.port),
        ("console", settings.console.host, settings.console.port),
    ):
        problem, busy = check_listen(key, host, port)
        found.problems += [problem] if problem else []
        if busy:
            (found.problems if starting else found.warnings).append(busy)
    found.warnings += _cdr_files(settings)
    return found


# --- secrets ------------------------------------------------------------------------------

MIN_KEY_CHARS = 32
MIN_KEY_DISTINCT = 10
MIN_TOKEN_CHARS = 16
# The console key's built-in default of old versions: cookies signed with it were forged.
OLD_DEFAULT_KEY = "change-me-please-0123456789abcdef"
# What config/example.toml, config/asterisk/manager.conf and the demo ship.
EXAMPLE_SECRETS = frozenset({"cti-secret", "change-me", "change-me-too"})
PLACEHOLDER_MARKS = (
    "change-me",
    "changeme",
    "change_me",
    "replace-with",
    "replace-me",
    "replace_me",
    "replaceme",
    "placeholder",
    "example",
    "0123456789",
    "xxxxxxxx",
)
KEY_ADVICE = (
    "set it to at least 32 random characters (whoever knows the key can sign a session cookie"
    " for any user), e.g. the output of"
    " python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
)


def _placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return lowered in EXAMPLE_SECRETS or any(mark in lowered for mark in PLACEHOLDER_MARKS)


def console_key_problem(console: ConsoleSettings) -> str | None:
    """The sentence refusing ``console.secret_key`` (``ConsoleSettings``), or None when it is
    fit to sign sessions. The console refuses to start with such a key, whoever starts it."""
    key = console.secret_key.get_secret_value() if console.secret_key is not None else ""
    if not key.strip():
        reason = "missing"
    elif key == OLD_DEFAULT_KEY:
        reason = "the built-in default"
    elif _placeholder(key):
        reason = "a placeholder"
    elif len(key) < MIN_KEY_CHARS:
        reason = f"too short ({len(key)} characters)"
    elif len(set(key)) < MIN_KEY_DISTINCT:
        reason = f"too simple ({len(set(key))} different characters)"
    else:
        return None
    return f"console.secret_key: {reason}: {KEY_ADVICE}."


def _secrets(settings: Settings) -> Findings:
    """Secrets that are missing or that everybody knows (the example's, the demo's), and the
    console's transport settings that would send its cookies where they must not go."""
    found = Findings()
    console = settings.console
    key = console_key_problem(console)
    found.problems += [key] if key else []
    token = console.metrics_token.get_secret_value() if console.metrics_token else ""
    reason = None
    if token and _placeholder(token):
        reason = "the example's placeholder"
    elif token and len(token) < MIN_TOKEN_CHARS:
        reason = f"too short ({len(token)} characters)"
    if reason:
        found.problems.append(
            f"console.metrics_token: {reason}: set it to a random string"
            " (python3 -c 'import secrets; print(secrets.token_urlsafe(32))') or remove the key"
            " (then only clients on this machine read /metrics)."
        )
    if console.plain_http_loopback and not console.serves_plain_http():
        found.problems.append(
            "console.plain_http_loopback: only honoured when console.host is a loopback address"
            f" (127.0.0.1, ::1): the console on {console.host} sends Secure cookies, which"
            " browsers send back only over HTTPS; serve it through a TLS proxy and remove the"
            " key, or listen on 127.0.0.1."
        )
    if (
        console.public_url.startswith("https:")
        and console.is_loopback()
        and not console.trusted_proxies
    ):
        found.warnings.append(
            f"console.trusted_proxies: the console listens on {console.host} behind"
            f' {console.public_url}: list the proxy\'s address (e.g. ["127.0.0.1"]), else the'
            " login limiter and /metrics take every client for the proxy."
        )
    for i, node in enumerate(settings.asterisk):
        secret = node.secret.get_secret_value()
        reason = "missing" if not secret.strip() else None
        if reason is None and _placeholder(secret):
            reason = "the example's placeholder"
        if reason:
            found.problems.append(
                f"asterisk[{i}].secret: {reason}: choose a random secret and set it here and as"
                f" the secret of the [{node.username}] user in Asterisk's manager.conf (whoever"
                " knows it controls the calls)."
            )
    sms_token = settings.sms.auth_token.get_secret_value()
    if sms_token and _placeholder(sms_token):
        if settings.sms.enabled:
            found.problems.append(
                "sms.auth_token: the example's placeholder: set the auth token of the twilio"
                " account (it signs the delivery reports /api/sms/status accepts)."
            )
        else:
            found.warnings.append(
                "sms.auth_token: the example's placeholder: set the auth token of the twilio"
                " account before enabling sms."
            )
    found.problems += _intake_tokens(settings)
    return found


def _intake_tokens(settings: Settings) -> list[str]:
    """``[[intake.clients]]`` tokens open tickets in the hotline's name: the example's
    placeholder is refused like the other example secrets."""
    return [
        f"intake.clients[{i}].token: the example's placeholder: give the client"
        f" {client.name!r} a random token"
        " (python3 -c 'import secrets; print(secrets.token_urlsafe(32))'): whoever knows it"
        " opens tickets in the hotline's name."
        for i, client in enumerate(settings.intake.clients)
        if _placeholder(client.token.get_secret_value())
    ]


# --- the configuration as a whole ---------------------------------------------------------

# Messages of routing.plan and cti.windows: the entry they are about, and what to do there.
_CONTRADICTIONS: tuple[tuple[str, str, str, str], ...] = (
    (r"DID .* is configured twice", "hotlines", "did", "give each [[hotlines]] its own did"),
    (r"agent .* is configured twice", "agents", "id", "give each [[agents]] its own id"),
    (r"overflows to itself", "routing.overflow", "to", "remove the rule's own skill from to"),
    (
        r"leader shift names unknown agent",
        "leader_shifts",
        "agent",
        "add that agent to [[agents]] with leader = true, or correct the name",
    ),
    (
        r"has a leader shift but leader = false",
        "leader_shifts",
        "agent",
        "set leader = true on that agent, or remove the shift",
    ),
    (
        r"leader shifts of .* overlap",
        "leader_shifts",
        "start",
        "move this shift off the agent's other shifts",
    ),
    (r"duplicate window id", "windows", "id", "give each [[windows]] its own id"),
)


def _routing_plan(settings: Settings) -> list[str]:
    from routing import RoutingPlan

    routing = settings.routing

    def build(part: dict[str, list[Any]]) -> None:
        RoutingPlan.from_settings(
            routing.model_copy(update={"overflow": part["routing.overflow"]}),
            part["hotlines"],
            part["agents"],
            part["leader_shifts"],
        )

    return _contradictions(
        {
            "hotlines": list(settings.hotlines),
            "agents": list(settings.agents),
            "routing.overflow": list(routing.overflow),
            "leader_shifts": list(settings.leader_shifts),
        },
        build,
    )


def _windows(settings: Settings) -> list[str]:
    from cti.windows import WindowDirectory
    from tickets.calendar import WorkCalendar

    def build(part: dict[str, list[Any]]) -> None:
        WindowDirectory(part["windows"], WorkCalendar({}), ZoneInfo("UTC"))

    return _contradictions({"windows": list(settings.windows)}, build)


Entries = dict[str, list[tuple[int, Any]]]  # section -> (index in the file, entry)


def _contradictions(
    sections: dict[str, list[Any]], build: Callable[[dict[str, list[Any]]], None]
) -> list[str]:
    """One sentence for each contradiction ``build`` (the code ``serve`` runs) raises: the
    entry it is about is the last of the shortest run of its section that ``build`` refuses
    with the same message; that entry is left out and ``build`` runs again."""

    def attempt(part: Entries) -> str | None:
        try:
            build({name: [entry for _, entry in items] for name, items in part.items()})
        except ValueError as exc:
            return str(exc)
        return None

    entries: Entries = {name: list(enumerate(items)) for name, items in sections.items()}
    problems: list[str] = []
    while (message := attempt(entries)) is not None and len(problems) < 50:
        known = [c for c in _CONTRADICTIONS if c[1] in entries and re.search(c[0], message)]
        if not known:
            return [*problems, f"{message}: correct the configuration."]
        _, section, key, advice = known[0]
        items = entries[section]
        for n in range(len(items)):
            if attempt({**entries, section: items[: n + 1]}) == message:
                problems.append(f"{section}[{items[n][0]}].{key}: {message}: {advice}.")
                del items[n]
                break
        else:
            return [*problems, f"{section}: {message}: {advice}."]
    return problems


def _time_zones(settings: Settings) -> list[str]:
    # [site] and [tickets] check theirs when the file is read; [recordings] does not yet.
    try:
        ZoneInfo(settings.recordings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return [
            f"recordings.timezone: unknown time zone {settings.recordings.timezone!r}: "
            "write e.g. 'Asia/Shanghai'."
        ]
    return []


# --- files the configuration names --------------------------------------------------------

RELATIVE = "relative names are read from the configuration file's directory"


def _calendar(settings: Settings) -> list[str]:
    path = settings.tickets.calendar_override
    if path is None:
        return []
    from tickets.calendar import CalendarError, WorkCalendar

    key = "tickets.calendar_override"
    if not path.exists():
        return [
            f"{key}: {path} does not exist: create it, correct the path ({RELATIVE}) "
            'or set calendar_override = "" for none.'
        ]
    try:
        WorkCalendar(path)  # what the ticket service loads at start
    except OSError as exc:
        return [f"{key}: cannot read {path}: {_reason(exc)}: make it readable by {_user()}."]
    except (CalendarError, ValueError, AttributeError, TypeError) as exc:
        # tickets.calendar reports most mistakes as CalendarError, not a JSON list of years
        reason = exc if isinstance(exc, CalendarError) else f"{path}: not a calendar ({exc})"
        return [f"{key}: {reason}: correct the file (format in tickets/calendar.py)."]
    return []


def _knowledge_base(settings: Settings) -> list[str]:
    path = settings.console.kb_path
    if not path:
        return []  # the sample shipped with the console
    try:
        from console.kb import KnowledgeBase
    except ModuleNotFoundError:
        return []  # no console, no knowledge base
    key = "console.kb_path"
    if not Path(path).is_file():
        return [
            f"{key}: {path} does not exist: create it, correct the path ({RELATIVE}) "
            'or set kb_path = "" for the shipped sample.'
        ]
    try:
        KnowledgeBase.load(path)  # what the console loads at start
    except OSError as exc:
        return [f"{key}: cannot read {path}: {_reason(exc)}: make it readable by {_user()}."]
    except ValueError as exc:
        return [
            f"{key}: {_reason(exc)}: correct the file "
            "(a JSON list of articles with id, title and body)."
        ]
    return []


def _cdr_files(settings: Settings) -> list[str]:
    """Not fatal (the CTI starts without it), but calls it missed while down stay missing."""
    warnings = []
    for i, node in enumerate(settings.asterisk):
        path = Path(node.cdr_path) if node.cdr_path else None
        if path is None:
            continue
        key = f"asterisk[{i}].cdr_path"
        if not path.exists():
            warnings.append(
                f"{key}: {path} does not exist (yet): calls the CTI misses while it is down "
                "are recovered from it once Asterisk writes it (cdr_custom.conf)."
            )
        elif not os.access(path, os.R_OK):
            warnings.append(f"{key}: {path} is not readable by {_user()}: make it readable.")
    return warnings


# --- what the CTI writes ------------------------------------------------------------------


def _database(url: str) -> list[str]:
    """The URL parses, names no placeholder password, and the database opens (what ``serve``
    does first); a SQLite file that does not exist yet only needs a directory that takes it."""
    from cti.db import open_database, parse_url
    from cti.errors import DatabaseError

    key = "database.url"
    try:
        parsed = parse_url(url, key)
    except DatabaseError as exc:
        return [str(exc)]
    if parsed.password and _placeholder(str(parsed.password)):
        return [
            f"{key}: the password in {mask_url(url)} is the example's placeholder: set the"
            " database user's real password (and change it on the server if it was set so)."
        ]
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            problem = _sqlite_file(key, Path(database))
            if problem or not Path(database).exists():
                return [problem] if problem else []  # a new file: the directory takes it
    try:
        engine = open_database(url, key=key)
    except DatabaseError as exc:
        return [str(exc)]
    try:
        from cti.demo import published_logins

        demo = published_logins(engine)
    finally:
        engine.dispose()
    if demo:
        logins = ", ".join(f"{name} / demo-{name}" for name in demo)
        return [
            f"{key}: {mask_url(url)} holds the demo's logins with their published passwords"
            f" ({logins}): give the site a database of its own, or change their passwords"
            " (hotline users passwd NAME)."
        ]
    return []


def _sqlite_file(key: str, path: Path) -> str | None:
    # SQLite writes its -wal and -shm files next to the database: the directory must take them.
    problem = _writable(key, path.parent, "the database")
    if problem is None and path.exists() and not os.access(path, os.R_OK | os.W_OK):
        problem = f"{key}: {path} is not writable by {_user()}: give it read and write access."
    return problem


def _directories(settings: Settings) -> list[str]:
    recs = settings.recordings
    problems: list[str | None] = []
    if recs.retention_days:
        # Retention deletes or moves the files the CTI reads there.
        problems.append(_writable("recordings.dir", Path(recs.dir), "recordings"))
        if recs.retention_action == "move" and recs.archive_dir:
            problems.append(
                _writable("recordings.archive_dir", Path(recs.archive_dir), "archived recordings")
            )
    elif Path(recs.dir).exists() and not os.access(recs.dir, os.R_OK | os.X_OK):
        problems.append(
            f"recordings.dir: {recs.dir} is not readable by {_user()}: give it read access."
        )
    problems.append(
        _writable("tickets.attachments_dir", settings.tickets.attachments_dir, "attachments")
    )
    return [p for p in problems if p]


def _writable(key: str, path: Path, what: str) -> str | None:
    """``path`` is a directory this user can write in, or one it can create (its nearest
    existing parent is)."""
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"{key}: {existing} is not a directory: point the key at a directory for {what}."
    if not os.access(existing, os.W_OK | os.X_OK):
        where = path if existing == path else f"{existing} (to create {path} in)"
        return (
            f"{key}: {where} is not writable by {_user()}: give that user write access "
            "or choose another directory."
        )
    return None


# --- what the CTI listens on --------------------------------------------------------------


def check_listen(key: str, host: str, port: int) -> tuple[str | None, str | None]:
    """(problem, port-in-use sentence): can this process listen on ``host``:``port`` as the
    CTI does (``SO_REUSEADDR``, every address the name resolves to)?"""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        return (
            f"{key}.host: cannot resolve {host!r} ({_reason(exc)}): "
            "use an address of this machine, e.g. 127.0.0.1 or 0.0.0.0.",
            None,
        )
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return None, (
                        f"{key}.port: {port} on {host} is in use by another process "
                        "(a running hotline serve?): stop it or choose another port."
                    )
                if exc.errno == errno.EADDRNOTAVAIL:
                    return (
                        f"{key}.host: {host} is not an address of this machine: "
                        "use one of its addresses, or 0.0.0.0 for all.",
                        None,
                    )
                if exc.errno == errno.EACCES:
                    return (
                        f"{key}.port: {port} needs privileges {_user()} does not have: "
                        "use a port above 1023.",
                        None,
                    )
                return f"{key}: cannot listen on {host}:{port} ({_reason(exc)}).", None
    return None, None


# --- wording ------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """The first line of an error, without Python's decoration."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


def _user() -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except (ImportError, KeyError):
        return "this user"

"""Console users: creation, listing, password checks, the login audit, and the CLI.

``hotline users add li --role agent --agent-id li --password-stdin`` creates a user;
``ensure_demo_users`` gives the demo one login per configured agent and window.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from console import passwords
from console.models import ConsoleSessionRow, LoginAuditRow, UserRow
from console.security import ROLES, User
from cti.db import utcnow
from cti.errors import Conflict, Invalid, NotFound

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
IDENT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
MIN_PASSWORD = 8


def to_user(row: UserRow) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name or row.username,
        roles=frozenset(r for r in row.roles.split(",") if r),
        agent_id=row.agent_id or None,
        window_id=row.window_id or None,
        department_id=row.department_id or None,
    )


def _check(
    username: str,
    roles: Iterable[str],
    agent_id: str | None,
    window_id: str | None,
    department_id: str | None,
) -> list[str]:
    if not USERNAME_RE.match(username):
        raise Invalid("bad-username", "usernames are 1-64 letters, digits, '_', '.' or '-'")
    clean = sorted(set(roles))
    if not clean:
        raise Invalid("no-role", "a user needs at least one role", allowed=list(ROLES))
    unknown = set(clean) - set(ROLES)
    if unknown:
        raise Invalid("bad-role", f"unknown roles {sorted(unknown)}", allowed=list(ROLES))
    for value, name in ((agent_id, "agent_id"), (window_id, "window_id")):
        if value and not IDENT_RE.match(value):
            raise Invalid("bad-identifier", f"{name} {value!r} is not an identifier")
    if department_id and not IDENT_RE.match(department_id):
        raise Invalid("bad-identifier", f"department_id {department_id!r} is not an identifier")
    if {"agent", "leader"} & set(clean) and not agent_id:
        raise Invalid("agent-id-required", "agents and leaders need --agent-id")
    if "window" in clean and not window_id:
        raise Invalid("window-id-required", "window staff need --window-id")
    if "department" in clean and not department_id:
        raise Invalid("department-id-required", "department users need --department-id")
    return clean


class Users:
    """The users table, with a short cache for the per-request session check."""

    CACHE_S = 5.0

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._cache: dict[int, tuple[float, User | None, int]] = {}
        self._lock = threading.Lock()

    # --- administration ------------------------------------------------------------

    def create(
        self,
        username: str,
        password: str,
        roles: Iterable[str],
        *,
        display_name: str = "",
        agent_id: str | None = None,
        window_id: str | None = None,
        department_id: str | None = None,
        min_length: int = MIN_PASSWORD,
    ) -> User:
        clean = _check(username, roles, agent_id, window_id, department_id)
        if len(password) < max(min_length, 1):
            raise Invalid("weak-password", f"passwords have at least {min_length} characters")
        row = UserRow(
            username=username,
            display_name=display_name[:64] or username,
            password_hash=passwords.hash_password(password),
            roles=",".join(clean),
            agent_id=agent_id or None,
            window_id=window_id or None,
            department_id=department_id or None,
            active=True,
            session_epoch=0,
            created_at=utcnow(),
        )
        try:
            with self.sessions.begin() as session:
                session.add(row)
                session.flush()
                return to_user(row)
        except IntegrityError:
            raise Conflict("user-exists", f"user {username!r} exists", username=username) from None

    def all(self) -> list[tuple[User, bool]]:
        with self.sessions() as session:
            rows = session.scalars(select(UserRow).order_by(UserRow.username))
            return [(to_user(r), r.active) for r in rows]

    def by_username(self, username: str) -> User | None:
        with self.sessions() as session:
            row = session.scalar(select(UserRow).where(UserRow.username == username))
            return to_user(row) if row is not None else None

    def set_password(self, username: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise Invalid("weak-password", f"passwords have at least {MIN_PASSWORD} characters")
        with self.sessions.begin() as session:
            row = self._row(session, username)
            row.password_hash = passwords.hash_password(password)
            row.session_epoch += 1
            _end_sessions(session, row.id)
        self._forget(row.id)

    def set_active(self, username: str, active: bool) -> None:
        with self.sessions.begin() as session:
            row = self._row(session, username)
            row.active = active
            row.session_epoch += 1
            _end_sessions(session, row.id)
        self._forget(row.id)

    @staticmethod
    def _row(session: Session, username: str) -> UserRow:
        row = session.scalar(select(UserRow).where(UserRow.username == username))
        if row is None:
            raise NotFound("no-such-user", f"no user {username!r}", username=username)
        return row

    # --- login and sessions --------------------------------------------------------

    def authenticate(self, username: str, password: str) -> tuple[User | None, int, str]:
        """(user, session epoch, outcome); the user is None unless the outcome is ``ok``."""
        with self.sessions() as session:
            row = session.scalar(select(UserRow).where(UserRow.username == username))
            if row is None:
                passwords.verify_password(password, passwords.dummy_hash())
                return None, 0, "no-such-user"
            if not passwords.verify_password(password, row.password_hash):
                return None, 0, "bad-password"
            if not row.active:
                return None, 0, "inactive"
            user, epoch = to_user(row), row.session_epoch
        with self.sessions.begin() as session:
            fresh = session.get(UserRow, user.id)
            if fresh is not None:
                fresh.last_login_at = utcnow()
                if passwords.needs_rehash(fresh.password_hash):
                    fresh.password_hash = passwords.hash_password(password)
        return user, epoch, "ok"

    def session_user(self, user_id: int, epoch: int) -> User | None:
        """The user of a session cookie, or None when the user is gone, inactive or the
        cookie predates a password change."""
        found, user = self.cached_session_user(user_id, epoch)
        if found:
            return user
        with self.sessions() as session:
            row = session.get(UserRow, user_id)
            if row is None or not row.active:
                entry: tuple[float, User | None, int] = (time.monotonic(), None, -1)
            else:
                entry = (time.monotonic(), to_user(row), row.session_epoch)
        with self._lock:
            self._cache[user_id] = entry
        return entry[1] if entry[1] is not None and entry[2] == epoch else None

    def cached_session_user(self, user_id: int, epoch: int) -> tuple[bool, User | None]:
        """(found in the cache, user): lets the event loop skip a thread hop on a hit."""
        with self._lock:
            hit = self._cache.get(user_id)
        if hit is None or time.monotonic() - hit[0] > self.CACHE_S:
            return False, None
        _, user, current_epoch = hit
        return True, (user if user is not None and current_epoch == epoch else None)

    def _forget(self, user_id: int) -> None:
        with self._lock:
            self._cache.pop(user_id, None)

    def record_login(
        self,
        username: str,
        outcome: str,
        *,
        user_id: int | None = None,
        remote_addr: str = "",
        user_agent: str = "",
    ) -> None:
        with self.sessions.begin() as session:
            session.add(
                LoginAuditRow(
                    username=username[:64],
                    user_id=user_id,
                    ok=outcome == "ok",
                    outcome=outcome,
                    remote_addr=remote_addr[:64],
                    user_agent=user_agent[:256],
                    at=utcnow(),
                )
            )

    def login_log(self, limit: int = 200) -> list[dict[str, Any]]:
        with self.sessions() as session:
            rows = session.scalars(
                select(LoginAuditRow).order_by(LoginAuditRow.id.desc()).limit(limit)
            )
            return [
                {
                    "username": r.username,
                    "ok": r.ok,
                    "outcome": r.outcome,
                    "remote_addr": r.remote_addr,
                    "at": _iso(r.at),
                }
                for r in rows
            ]


def _end_sessions(session: Session, user_id: int) -> None:
    """The new epoch already ends the user's sessions; their rows say so too, so that the
    administrator's list of sessions does not show them."""
    session.execute(
        update(ConsoleSessionRow)
        .where(ConsoleSessionRow.user_id == user_id, ConsoleSessionRow.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --- the demo ----------------------------------------------------------------------------


def ensure_demo_users(sessions: sessionmaker[Session], settings: Any) -> list[str]:
    """One login per configured agent (``li`` / ``demo-li``), window and department, plus
    ``supervisor`` and ``admin``. Existing users are left alone. Only the demo calls this:
    the passwords are public."""
    users = Users(sessions)
    wanted: list[tuple[str, list[str], dict[str, Any]]] = []
    for agent in settings.agents:
        role = "leader" if agent.leader else "agent"
        wanted.append((agent.id, [role], {"agent_id": agent.id, "display_name": agent.name}))
    for window in settings.windows:
        wanted.append(
            (
                f"window-{window.id}",
                ["window"],
                {"window_id": window.id, "display_name": window.name},
            )
        )
    for dept in settings.departments:
        wanted.append(
            (
                f"dept-{dept.id}",
                ["department"],
                {"department_id": dept.id, "display_name": dept.name},
            )
        )
    wanted.append(("supervisor", ["supervisor"], {"display_name": "值班长"}))
    wanted.append(("admin", ["admin"], {"display_name": "系统管理员"}))
    made = []
    for username, roles, extra in wanted:
        if users.by_username(username) is None:
            # The demo's published passwords ("demo-li") are shorter than the policy allows.
            users.create(username, f"demo-{username}", roles, min_length=0, **extra)
            made.append(username)
    return made


# --- CLI ---------------------------------------------------------------------------------


def _users_from_args(args: argparse.Namespace) -> Users:
    from cti.config import load
    from cti.db import create_schema, open_database, session_factory

    settings = load(getattr(args, "config", None))
    _check_identities(args, settings)
    engine = open_database(settings.database.url)
    create_schema(engine)
    return Users(session_factory(engine))


def _check_identities(args: argparse.Namespace, settings: Any) -> None:
    """``--agent-id``, ``--window-id`` and ``--department-id`` name an entry of the
    configuration: a user tied to an agent, window or unit that does not exist can never
    work (the desktop finds no agent, the window page no window)."""
    from cti.errors import CommandError

    for option, value, table in (
        ("--agent-id", getattr(args, "agent_id", None), settings.agents),
        ("--window-id", getattr(args, "window_id", None), settings.windows),
        ("--department-id", getattr(args, "department_id", None), settings.departments),
    ):
        known = [entry.id for entry in table]
        if value and value not in known:
            section = option[2:].split("-")[0] + "s"
            listed = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            where = f"its [[{section}]] are: {listed}" if known else f"it has no [[{section}]]"
            raise CommandError(
                f"{option} {value!r} is not in the configuration ({where}): add it to the"
                " configuration or correct the option."
            )


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise Invalid("password-mismatch", "the passwords differ")
    return first


def cmd_add(args: argparse.Namespace) -> int:
    users = _users_from_args(args)
    user = users.create(
        args.username,
        _read_password(args),
        args.role,
        display_name=args.display_name or "",
        agent_id=args.agent_id,
        window_id=args.window_id,
        department_id=args.department_id,
    )
    print(f"user {user.username} ({','.join(sorted(user.roles))}) created, id {user.id}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for user, active in _users_from_args(args).all():
        ident = user.agent_id or user.window_id or user.department_id or ""
        state = "" if active else " (disabled)"
        print(
            f"{user.username}\t{','.join(sorted(user.roles))}\t{ident}\t{user.display_name}{state}"
        )
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    _users_from_args(args).set_password(args.username, _read_password(args))
    print(f"password of {args.username} changed; its sessions are logged out")
    return 0


def cmd_active(args: argparse.Namespace) -> int:
    _users_from_args(args).set_active(args.username, args.active)
    print(f"user {args.username} {'enabled' if args.active else 'disabled'}")
    return 0


def _run(func: Any) -> Any:
    """Report API errors of the user store as CLI errors (exit status 2)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except (Invalid, Conflict, NotFound) as exc:
            message = exc.message.rstrip(".")
            print(f"hotline users {args.users_command}: {message}.", file=sys.stderr)
            return 2

    return run


def add_commands(sub: Any) -> None:
    p = sub.add_parser("users", help="console users (logins, roles, passwords)")
    usub = p.add_subparsers(dest="users_command", required=True)

    a = usub.add_parser("add", help="create a user")
    a.add_argument("username")
    a.add_argument("--role", action="append", required=True, choices=ROLES)
    a.add_argument("--display-name")
    a.add_argument("--agent-id", help="the agent identity (agents and leaders)")
    a.add_argument("--window-id", help="the service window (window staff)")
    a.add_argument("--department-id", help="the member unit (department users)")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.add_argument("--config")
    a.set_defaults(func=_run(cmd_add))

    ls = usub.add_parser("list", help="list users")
    ls.add_argument("--config")
    ls.set_defaults(func=_run(cmd_list))

    pw = usub.add_parser("passwd", help="set a user's password (logs out its sessions)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true")
    pw.add_argument("--config")
    pw.set_defaults(func=_run(cmd_passwd))

    for name, active in (("enable", True), ("disable", False)):
        e = usub.add_parser(name, help=f"{name} a user (disabling logs out its sessions)")
        e.add_argument("username")
        e.add_argument("--config")
        e.set_defaults(func=_run(cmd_active), active=active)

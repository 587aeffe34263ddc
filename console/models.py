"""Tables of the console: the people who log in, every login attempt, and the sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cti.db import Base, UTCDateTime, utcnow


class UserRow(Base):
    """A console user. ``roles`` is a comma list of ``console.security.ROLES``;
    ``password_hash`` says its own algorithm and parameters (``console.passwords``)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    roles: Mapped[str] = mapped_column(String(128), default="")
    agent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    window_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    department_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped when the password changes or the user is deactivated: older session cookies
    # carry the old value and stop working.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LoginAuditRow(Base):
    """One login attempt, successful or not (kept for the security review)."""

    __tablename__ = "login_audit"
    __table_args__ = (Index("ix_login_audit_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    # ok | bad-password | no-such-user | inactive | rate-limited | logout
    outcome: Mapped[str] = mapped_column(String(16))
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ConsoleSessionRow(Base):
    """A logged-in session (``console.sessions``). The cookie names it by a random token, of
    which only the SHA-256 is stored; logout or an administrator sets ``revoked_at``, and the
    cookie stops working at once."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")

"""console sessions: logins kept on the server, so that logout and revocation end them

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 21:44:21.305435
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cti.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", cti.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", cti.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", cti.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", cti.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("remote_addr", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_console_sessions_token_hash")),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_sessions_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_console_sessions_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_console_sessions_expires_at"))

    op.drop_table("console_sessions")

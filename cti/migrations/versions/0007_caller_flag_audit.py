"""caller flags set by supervisors: the kind of flag, and the audit trail of every change

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 04:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cti.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("caller_flags", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="", nullable=False)
        )
    op.create_table(
        "caller_flag_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("caller", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", cti.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caller_flag_events")),
    )
    with op.batch_alter_table("caller_flag_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caller_flag_events_caller"), ["caller"])
        batch_op.create_index(batch_op.f("ix_caller_flag_events_at"), ["at"])


def downgrade() -> None:
    with op.batch_alter_table("caller_flag_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caller_flag_events_at"))
        batch_op.drop_index(batch_op.f("ix_caller_flag_events_caller"))
    op.drop_table("caller_flag_events")
    with op.batch_alter_table("caller_flags", schema=None) as batch_op:
        batch_op.drop_column("kind")

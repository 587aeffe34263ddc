"""live transcripts: the segments a live follower writes while the call goes on, and what
the agents did with the suggestions drafted from them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 03:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cti.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_segments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("speaker", sa.String(length=8), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=False),
        sa.Column("at", cti.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_segments")),
    )
    with op.batch_alter_table("live_segments", schema=None) as batch_op:
        batch_op.create_index("ix_live_segments_at", ["at"])
    op.create_table(
        "ticket_suggestions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.String(length=20), nullable=False),
        sa.Column("field", sa.String(length=16), nullable=False),
        sa.Column("suggested", sa.Text(), nullable=False),
        sa.Column("final", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", cti.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_suggestions")),
        sa.UniqueConstraint("ticket_id", "field", name="uq_ticket_suggestions_field"),
    )
    with op.batch_alter_table("ticket_suggestions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_suggestions_ticket_id"), ["ticket_id"])
        batch_op.create_index(batch_op.f("ix_ticket_suggestions_at"), ["at"])


def downgrade() -> None:
    with op.batch_alter_table("ticket_suggestions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_suggestions_at"))
        batch_op.drop_index(batch_op.f("ix_ticket_suggestions_ticket_id"))
    op.drop_table("ticket_suggestions")
    with op.batch_alter_table("live_segments", schema=None) as batch_op:
        batch_op.drop_index("ix_live_segments_at")
    op.drop_table("live_segments")

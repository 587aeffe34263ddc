"""ticket intakes: SMS, web form and intake API requests (unique by their sender's id), and
the web form's codes waiting for confirmation

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cti.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_intakes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("received_at", cti.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_intakes_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_intakes")),
        sa.UniqueConstraint("source", "external_id", name="uq_ticket_intakes_source_external"),
    )
    with op.batch_alter_table("ticket_intakes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_intakes_ticket_id"), ["ticket_id"])
        batch_op.create_index(batch_op.f("ix_ticket_intakes_phone"), ["phone"])
        batch_op.create_index(batch_op.f("ix_ticket_intakes_received_at"), ["received_at"])
    op.create_table(
        "intake_codes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("created_at", cti.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", cti.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_codes")),
    )
    with op.batch_alter_table("intake_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intake_codes_phone"), ["phone"])
        batch_op.create_index(batch_op.f("ix_intake_codes_address"), ["address"])
        batch_op.create_index(batch_op.f("ix_intake_codes_created_at"), ["created_at"])


def downgrade() -> None:
    with op.batch_alter_table("intake_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_codes_created_at"))
        batch_op.drop_index(batch_op.f("ix_intake_codes_address"))
        batch_op.drop_index(batch_op.f("ix_intake_codes_phone"))
    op.drop_table("intake_codes")
    with op.batch_alter_table("ticket_intakes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_intakes_received_at"))
        batch_op.drop_index(batch_op.f("ix_ticket_intakes_phone"))
        batch_op.drop_index(batch_op.f("ix_ticket_intakes_ticket_id"))
    op.drop_table("ticket_intakes")

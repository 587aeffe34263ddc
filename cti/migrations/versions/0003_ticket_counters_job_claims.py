"""ticket counters and job claims: identifiers and job runs decided by the database, so that
two CTI processes on one database never draw the same ticket number or fire a timer twice

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cti.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_counters",
        sa.Column("day", sa.String(length=8), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_ticket_counters")),
    )
    op.create_table(
        "job_claims",
        sa.Column("job", sa.String(length=120), nullable=False),
        sa.Column("due_at", cti.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", cti.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("job", "due_at", name=op.f("pk_job_claims")),
    )
    with op.batch_alter_table("job_claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_claims_claimed_at"), ["claimed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_claims_claimed_at"))
    op.drop_table("job_claims")
    op.drop_table("ticket_counters")

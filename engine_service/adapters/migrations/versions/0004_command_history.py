"""command history

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "command_events",
        sa.Column(
            "event_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("command_id", sa.String(length=36), nullable=False),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=True),
        sa.Column("host_id", sa.String(length=36), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["command_id"],
            ["commands.command_id"],
            name=op.f("fk_command_events_command_id_commands"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_command_events")),
    )
    op.create_index(
        op.f("ix_command_events_command_id"), "command_events", ["command_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_command_events_command_id"), table_name="command_events")
    op.drop_table("command_events")

"""fencing record on hosts, durable zombie sightings, indexes for retention

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmed_rebooted_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "confirmed_rebooted_by", sa.String(length=255), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column("confirmed_rebooted_reason", sa.Text(), nullable=False, server_default="")
        )
    op.create_table(
        "zombie_sightings",
        sa.Column("host_id", sa.String(length=36), nullable=False),
        sa.Column("vdsm_task_id", sa.String(length=36), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("host_id", "vdsm_task_id", name=op.f("pk_zombie_sightings")),
    )
    op.create_index(op.f("ix_commands_ended_at"), "commands", ["ended_at"], unique=False)
    op.create_index(
        op.f("ix_client_requests_result_id"), "client_requests", ["result_id"], unique=False
    )
    op.create_index(
        op.f("ix_client_requests_created_at"), "client_requests", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_client_requests_created_at"), table_name="client_requests")
    op.drop_index(op.f("ix_client_requests_result_id"), table_name="client_requests")
    op.drop_index(op.f("ix_commands_ended_at"), table_name="commands")
    op.drop_table("zombie_sightings")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_column("confirmed_rebooted_reason")
        batch_op.drop_column("confirmed_rebooted_by")
        batch_op.drop_column("confirmed_rebooted_at")

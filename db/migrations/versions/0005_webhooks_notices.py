"""completion webhooks (one durable delivery per job), the notices told to admins once (workers gone / back), and
re-runs (a job that runs an earlier job's stored photo again; the threshold a worker applied)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("rerun_of", sa.String(length=32), nullable=True))
    op.add_column("jobs", sa.Column("rerun_mode", sa.String(length=16), nullable=True))
    op.add_column("jobs", sa.Column("conf_used", sa.Float(), nullable=True))
    op.create_table(
        "webhooks",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("base_url", sa.String(length=300), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=True),
        sa.Column("first_attempt_at", sa.Float(), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("lease_owner", sa.String(length=160), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index("ix_webhooks_due", "webhooks", ["state", "next_attempt_at"], unique=False)
    op.create_table(
        "notices",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("since", sa.Float(), nullable=True),
        sa.Column("told_at", sa.Float(), nullable=True),
        sa.Column("waiting", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("conf_used")
        batch.drop_column("rerun_mode")
        batch.drop_column("rerun_of")
    op.drop_table("notices")
    op.drop_index("ix_webhooks_due", table_name="webhooks")
    op.drop_table("webhooks")

"""job owners, status-message columns, delivery lease owners, cancel, chat settings; the outbox is the job row

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("traceparent", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("cancelled_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("status_message_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("status_edited_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("delivery_lease_owner", sa.String(length=160), nullable=True))
        batch_op.create_index("ix_jobs_owner_received_at", ["owner", "received_at"], unique=False)
        batch_op.create_index("ix_jobs_lease_owner", ["delivery_lease_owner"], unique=False)
    _move_status_message_ids()

    # a job in "received" is the outbox now: its row is the record of what still has to be published
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_job_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_available_at"))
    op.drop_table("outbox")

    op.create_table(
        "chat_settings",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("conf", sa.Float(), nullable=True),
        sa.Column("classes", sa.JSON(), nullable=True),
        sa.Column("output", sa.String(length=16), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "chat_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # photos are JPEG/PNG/WebP: already compressed, so TOAST's compression only costs CPU
        op.execute("ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL")


def _move_status_message_ids() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, origin FROM jobs WHERE origin IS NOT NULL AND delivered_at IS NULL"))
    for job_id, origin in list(rows):
        data = json.loads(origin) if isinstance(origin, str) else origin
        message_id = (data or {}).get("status_message_id")
        if message_id:
            bind.execute(
                sa.text("UPDATE jobs SET status_message_id = :m WHERE id = :id"), {"m": str(message_id), "id": job_id}
            )


def downgrade() -> None:
    op.drop_table("chat_settings")
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("available_at", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_available_at"), ["available_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_job_id"), ["job_id"], unique=False)
    op.execute(
        "INSERT INTO outbox (job_id, created_at, available_at, attempts) "
        "SELECT id, received_at, received_at, 0 FROM jobs WHERE status = 'received'"
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_lease_owner")
        batch_op.drop_index("ix_jobs_owner_received_at")
        batch_op.drop_column("delivery_lease_owner")
        batch_op.drop_column("status_edited_id")
        batch_op.drop_column("status_message_id")
        batch_op.drop_column("cancelled_at")
        batch_op.drop_column("traceparent")
        batch_op.drop_column("held")
        batch_op.drop_column("owner")

"""worker links die on requeue (link_gen); a person's own settings; purged jobs keep nothing that names anyone

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_gen", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index("ix_jobs_purged_received", ["purged_at", "received_at"], unique=False)
    # a Telegram private chat's settings were its person's: they are kept as the person's own now ("user:<id>")
    op.execute(
        "UPDATE chat_settings SET chat_id = 'user:' || chat_id "
        "WHERE platform = 'telegram' AND chat_id NOT LIKE '-%' AND chat_id NOT LIKE 'user:%'"
    )
    # jobs whose photos retention or /forget already deleted keep nothing that names a person or a chat
    op.execute(
        "UPDATE jobs SET origin = NULL, user_ref = NULL, idempotency_key = NULL, group_key = NULL, "
        "image_sha256 = '', status_message_id = NULL, status_edited_id = NULL, delivery_receipt = NULL, "
        "traceparent = NULL WHERE purged_at IS NOT NULL"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE chat_settings SET chat_id = substr(chat_id, 6) WHERE platform = 'telegram' AND chat_id LIKE 'user:%'"
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_purged_received")
        batch_op.drop_column("link_gen")

"""GIFs and short clips: what a job is (a photo or a clip), how far a worker is with a clip, and the clip itself
(what it is, and once done its animation and the most of each class seen at once)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("media", sa.String(length=8), nullable=False, server_default="photo"))
    op.add_column("jobs", sa.Column("clip", sa.JSON(), nullable=True))
    op.add_column("jobs", sa.Column("progress_done", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("progress_total", sa.Integer(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN on both (SQLite 3.35 and later): a batch copy of jobs would drop the table, and with
    # foreign keys on, SQLite would delete its blobs and webhooks rows with it
    for column in ("progress_total", "progress_done", "clip", "media"):
        op.drop_column("jobs", column)

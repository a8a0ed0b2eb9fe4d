"""photos and results move out of the database into the blob store; blobs rows keep the file's digest

Revision ID: 0006
Revises: 0005

Every ``blobs.data`` is written to the blob store (``DETECTBOT_BLOB_DIR``) and the row keeps its digest; then the
column is dropped. Batched (the bytes of one row at a time in memory), and restartable: the rows still to move are
those without a digest, a file written by an interrupted run is found in place (content addressing), and the
whole revision is one transaction, so the database is either before it or after it, never in between. The
migration needs the store: ``detectbot migrate`` (and the gateway's automatic migration) hands it over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)

BATCH = 500  # rows whose keys are read at once; their bytes are read one row at a time


def upgrade() -> None:
    op.create_table(
        "blob_files",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("touched_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_blob_files_touched_at", "blob_files", ["touched_at"], unique=False)
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
    _move_bytes_out()
    register = sa.text("INSERT INTO blob_files (digest, touched_at) SELECT DISTINCT digest, :at FROM blobs")
    op.execute(register.bindparams(sa.bindparam("at", time.time(), type_=sa.Float())))
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.drop_column("data")
        batch_op.alter_column("digest", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index("ix_blobs_digest", ["digest"], unique=False)
        batch_op.create_foreign_key("fk_blobs_digest_blob_files", "blob_files", ["digest"], ["digest"])


def downgrade() -> None:
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data", sa.LargeBinary(), nullable=True))
    _move_bytes_back()
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_blobs_digest_blob_files", type_="foreignkey")
        batch_op.drop_index("ix_blobs_digest")
        batch_op.drop_column("digest")
        batch_op.alter_column("data", existing_type=sa.LargeBinary(), nullable=False)
    op.drop_index("ix_blob_files_touched_at", table_name="blob_files")
    op.drop_table("blob_files")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL")  # as 0003 left it


def _store() -> Any:
    """The blob store ``db.migrate`` handed over (a :class:`db.blobstore.BlobStore`)."""
    store = context.config.attributes.get("blob_store")
    if store is None:
        raise RuntimeError(
            "this migration moves the stored photos into the blob store: run it with `detectbot migrate`, which "
            "knows DETECTBOT_BLOB_DIR"
        )
    return store


def _move_bytes_out() -> None:
    bind = op.get_bind()
    pending = bind.scalar(sa.text("SELECT count(*) FROM blobs WHERE digest IS NULL"))
    if not pending:
        return
    store = _store()
    log.info("moving %d stored images into the blob store", pending)
    moved = 0
    while True:
        keys = bind.execute(
            sa.text("SELECT job_id, kind FROM blobs WHERE digest IS NULL ORDER BY job_id, kind LIMIT :n"),
            {"n": BATCH},
        ).all()
        if not keys:
            break
        names = []
        for job_id, kind in keys:
            data = bind.scalar(
                sa.text("SELECT data FROM blobs WHERE job_id = :job_id AND kind = :kind"),
                {"job_id": job_id, "kind": kind},
            )
            names.append({"job_id": job_id, "kind": kind, "digest": store.put_blocking(bytes(data))})
        bind.execute(sa.text("UPDATE blobs SET digest = :digest WHERE job_id = :job_id AND kind = :kind"), names)
        moved += len(names)
        log.info("moved %d of %d images", moved, pending)


def _move_bytes_back() -> None:
    bind = op.get_bind()
    if not bind.scalar(sa.text("SELECT count(*) FROM blobs WHERE data IS NULL")):
        return
    store = _store()
    while True:
        keys = bind.execute(
            sa.text("SELECT job_id, kind, digest FROM blobs WHERE data IS NULL ORDER BY job_id, kind LIMIT :n"),
            {"n": BATCH},
        ).all()
        if not keys:
            break
        for job_id, kind, digest in keys:
            bind.execute(
                sa.text("UPDATE blobs SET data = :data WHERE job_id = :job_id AND kind = :kind"),
                {"data": store.get_blocking(digest), "job_id": job_id, "kind": kind},
            )

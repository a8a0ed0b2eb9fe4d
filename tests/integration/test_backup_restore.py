"""Backup and restore, followed literally from docs/operations.md, on SQLite and on Postgres.

A gateway and a worker answer a few photos (one of them sent by two people, so one file serves two jobs); the test
runs the document's own command blocks, in its order, while the gateway keeps running, with a photo deleted
between the database dump and the copy of the blob directory (the one race the order leaves). Then everything is
lost (the data directory, the database, the Discord inbox), restored by the document's blocks, checked with
``detectbot blobs check --repair``, and a new gateway serves every job's annotated photo through the links handed
out before the backup (so the signing key came back too), and takes new photos.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy import inspect

from db.engine import create_engine
from tests import tools
from tests.conftest import eventually
from tests.images import jpeg
from tests.services import OTHER_CLIENT_KEY, PG_DSN, fresh_postgres_database, submit_photo, wait_finished

ROOT = Path(__file__).resolve().parents[2]
FIXED = "py:tests.detectors:fixed"


def blocks() -> dict[str, str]:
    """docs/operations.md's command blocks, by the name in the comment above each."""
    text = (ROOT / "docs" / "operations.md").read_text()
    found = dict(re.findall(r"<!-- ops: ([\w-]+) -->\n```bash\n(.*?)\n```", text, re.S))
    assert {"backup-blobs", "backup-keys", "restore-blobs", "restore-keys", "restore-check"} <= set(found), found
    return found


def run_block(name: str, env: dict[str, str]) -> str:
    script = blocks()[name]
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, f"{name} failed ({done.returncode}):\n{script}\n{done.stdout}\n{done.stderr}"
    return done.stdout


async def finished(http: aiohttp.ClientSession, status_url: str) -> None:
    """Until the job behind this signed status link is finished (whoever sent it)."""

    async def check() -> bool:
        async with http.get(f"{status_url}&wait=5") as response:
            return bool((await response.json())["finished"])

    await eventually(check, timeout=60, what="the job to finish")


def libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def test_backup_and_restore_from_the_docs_bring_back_every_photo(
    database_url: str, tmp_path: Path, start_gateway: Any, start_worker: Any, http: aiohttp.ClientSession
) -> None:
    tools.backup_tools()
    kind = "postgres" if database_url.startswith("postgresql") else "sqlite"
    data_dir = tmp_path / "data"
    if kind == "sqlite":  # the default place, which the document's SQLite commands name
        database_url = f"sqlite+aiosqlite:///{data_dir / 'detectbot.sqlite3'}"
    inbox = tmp_path / "discord" / "discord-inbox"
    inbox.mkdir(parents=True)
    (inbox / "1234.json").write_text('{"interaction": "acknowledged, not yet handed over"}')
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DETECTBOT_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "BACKUP": str(tmp_path / "backups" / "today"),
        "PGURL": libpq(database_url),
        "DATA_DIR": str(data_dir),
        "BLOB_DIR": str(data_dir / "blobs"),
        "INBOX_DIR": str(inbox),
    }

    # a running system: no signing secret, so the gateway keeps its key in the data directory
    gateway = await start_gateway(database_url=database_url, data_dir=data_dir, signing_secret=None)
    worker = await start_worker(gateway, model=FIXED)
    shared = jpeg(150, 100)
    sent = [
        await submit_photo(http, gateway, jpeg(120, 90)),
        await submit_photo(http, gateway, shared),
        await submit_photo(http, gateway, shared, headers={"Authorization": f"Bearer {OTHER_CLIENT_KEY}"}),
        await submit_photo(http, gateway, jpeg(130, 90)),
    ]
    jobs = {body["job_id"]: body for _, body in sent}
    results = {}
    for job_id, body in jobs.items():
        await finished(http, body["status_url"])
        async with http.get(body["result_url"]) as response:
            assert response.status == 200
            results[job_id] = await response.read()
    forgotten = sent[-1][1]["job_id"]

    # the backup, as the document says, while the gateway runs; a photo is deleted after the dump
    run_block(f"backup-database-{kind}", env)
    async with http.delete(f"{gateway.url}/v1/jobs/{forgotten}", headers=gateway.headers()) as response:
        assert response.status == 200
    run_block("backup-blobs", env)
    run_block("backup-keys", env)

    # everything is lost
    port = gateway.server.port
    await worker.stop()
    await gateway.stop()
    shutil.rmtree(data_dir)
    shutil.rmtree(inbox)
    if kind == "postgres":
        admin = await asyncpg.connect(PG_DSN)
        await admin.execute(f'DROP DATABASE "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()

    async with fresh_postgres_database() as restored_pg:
        restored_url = restored_pg if kind == "postgres" else database_url
        env["PGURL"] = libpq(restored_url)
        env.update(
            {
                "DETECTBOT_DATABASE_URL": restored_url,
                "DETECTBOT_DATA_DIR": str(data_dir),
                "DETECTBOT_BLOB_DIR": str(data_dir / "blobs"),
            }
        )  # fmt: skip — the gateway's settings
        run_block(f"restore-database-{kind}", env)
        run_block("restore-blobs", env)
        run_block("restore-keys", env)
        checked = run_block("restore-check", env)
        assert f"1 jobs name files that are missing: {forgotten}" in checked and "repaired" in checked, checked
        assert (inbox / "1234.json").read_text() == '{"interaction": "acknowledged, not yet handed over"}'

        engine = create_engine(restored_url)
        async with engine.connect() as connection:
            stored = await connection.run_sync(lambda sync: inspect(sync).get_columns("blobs"))
        await engine.dispose()
        assert "data" not in {column["name"] for column in stored}  # no image bytes in the database

        # a working system again, with every photo, through the links handed out before the backup
        restored = await start_gateway(
            database_url=restored_url, data_dir=data_dir, signing_secret=None, port=port
        )  # where the links point
        for job_id, body in jobs.items():
            async with http.get(body["result_url"]) as response:
                if job_id == forgotten:
                    assert response.status == 410  # deleted after the dump: its deletion was finished
                else:
                    assert (response.status, await response.read()) == (200, results[job_id]), job_id
        await start_worker(restored, model=FIXED)
        _, fresh = await submit_photo(http, restored, jpeg(140, 90))
        assert (await wait_finished(http, restored, fresh["job_id"]))["status"] == "done"
        _, again = await submit_photo(http, restored, shared)  # the first sender's photo again: from the cache
        assert again["status"] == "done"
        await restored.stop()

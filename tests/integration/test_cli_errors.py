"""What a newcomer's mistakes look like: one sentence that says what to fix, never a traceback."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.images import jpeg
from tests.services import API_KEY, CLIENT_KEY, GatewayHandle

ROOT = Path(__file__).resolve().parents[2]


async def run(*args: str, env: dict[str, str], cwd: Path, module: str = "detectbot.cli") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTBOT_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def one_line(err: str, prefix: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, err
    return lines[0]


async def test_worker_without_a_broker_says_so_before_loading_any_model(tmp_path: Path) -> None:
    env = clean_env(
        DETECTBOT_AMQP_URL="amqp://guest:guest@127.0.0.1:1/", DETECTBOT_BROKER_RETRY_S="1",
        DETECTBOT_MODEL="py:tests.detectors:fixed", DETECTBOT_DATA_DIR=str(tmp_path),
    )  # fmt: skip
    code, _, err = await run("worker", env=env, cwd=tmp_path)
    line = one_line(err, "detectbot worker:")
    assert code == 2
    assert "cannot reach the broker at amqp://guest@127.0.0.1:1/" in line and "DETECTBOT_AMQP_URL" in line
    assert "guest:guest" not in err  # no password in the message
    assert "model" not in err.lower()  # it gave up before loading a model


async def test_migrate_against_an_unreachable_database(tmp_path: Path) -> None:
    env = clean_env(
        DETECTBOT_DATABASE_URL="postgresql+asyncpg://detectbot:s3cret@127.0.0.1:1/detectbot",
        DETECTBOT_DATABASE_RETRY_S="1",
    )
    code, _, err = await run("migrate", env=env, cwd=tmp_path)
    line = one_line(err, "detectbot migrate:")
    assert code == 2
    assert "cannot use the database postgresql+asyncpg://detectbot:***@127.0.0.1:1/detectbot" in line
    assert "DETECTBOT_DATABASE_URL" in line and "s3cret" not in err


async def test_a_bad_setting_names_its_variable(tmp_path: Path) -> None:
    code, _, err = await run("gateway", env=clean_env(DETECTBOT_PORT="eighty", DETECTBOT_API_KEYS="k"), cwd=tmp_path)
    line = one_line(err, "detectbot gateway:")
    assert code == 2
    assert "invalid settings: DETECTBOT_PORT:" in line and "'eighty'" in line


async def test_a_secret_in_a_bad_setting_is_not_repeated(tmp_path: Path) -> None:
    env = clean_env(DETECTBOT_TELEGRAM_TOKEN="123456:" + "A" * 35, DETECTBOT_ADMIN_IDS="not-a-number")
    code, _, err = await run("telegram", env=env, cwd=tmp_path)
    line = one_line(err, "detectbot telegram:")
    assert code == 2 and "DETECTBOT_ADMIN_IDS" in line
    assert "A" * 35 not in err


async def test_an_unknown_log_level(tmp_path: Path) -> None:
    env = clean_env(DETECTBOT_API_KEYS="k")
    for args in (("--log-level", "bogus", "gateway"), ("gateway", "--log-level", "bogus")):
        code, _, err = await run(*args, env=env, cwd=tmp_path)
        line = one_line(err, "detectbot gateway:")
        assert code == 2 and "unknown log level 'bogus'" in line and "DEBUG, INFO, WARNING" in line


async def test_a_gateway_without_keys(tmp_path: Path) -> None:
    code, _, err = await run("gateway", env=clean_env(DETECTBOT_DATA_DIR=str(tmp_path)), cwd=tmp_path)
    line = one_line(err, "detectbot gateway:")
    assert code == 2 and "set DETECTBOT_API_KEYS" in line


async def test_bots_without_tokens(tmp_path: Path) -> None:
    for bot, variable in (("telegram", "DETECTBOT_TELEGRAM_TOKEN"), ("discord", "DETECTBOT_DISCORD_TOKEN")):
        code, _, err = await run(bot, env=clean_env(), cwd=tmp_path)
        assert code == 2 and variable in one_line(err, f"detectbot {bot}:")


async def test_the_gateway_says_where_it_listens_and_what_it_uses(tmp_path: Path, queue_name: str) -> None:
    env = clean_env(
        DETECTBOT_API_KEYS="k-0123456789", DETECTBOT_PORT="0", DETECTBOT_DATA_DIR=str(tmp_path),
        DETECTBOT_QUEUE=queue_name, PYTHONUNBUFFERED="1",
    )  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "queue_gateway", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        while True:
            line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
            assert line, "the gateway ended without saying where it listens"
            if "listening on http://127.0.0.1:" in line:
                break
        assert "database sqlite+aiosqlite:///" in line and "broker amqp://guest@127.0.0.1:5672/" in line
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_submit_gives_up_waiting_after_its_timeout(start_gateway, tmp_path: Path) -> None:
    gateway: GatewayHandle = await start_gateway(amqp_url="amqp://guest:guest@127.0.0.1:1/")  # the broker is away
    photo = tmp_path / "one.jpg"
    photo.write_bytes(jpeg())
    env = clean_env(DETECTBOT_GATEWAY_URL=gateway.url, DETECTBOT_API_KEY=CLIENT_KEY)
    code, out, err = await run("submit", str(photo), "--timeout", "2", env=env, cwd=tmp_path)
    assert code == 1, out + err
    assert "one.jpg: the gateway has it, but the broker is unreachable" in out
    assert "one.jpg: still received after 2 s" in out and "--timeout" in out
    assert API_KEY not in out + err and CLIENT_KEY not in out + err

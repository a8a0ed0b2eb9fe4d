"""Every request the gateway's own OpenAPI document allows (and many it does not) gets an answer below 500, with a
status the document lists and a body that matches its schema.

A short schemathesis run over /v1/openapi.json against the real gateway; the long one is in docs/architecture.md
(Tests).
Also the four requests that once answered 500.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from tests.services import ADMIN_KEY, GatewayHandle

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# no 5xx; every status answered is one the document lists; every body matches the document's schema
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"


async def test_schemathesis_finds_no_server_error(start_gateway, start_worker, tmp_path: Path) -> None:
    gateway: GatewayHandle = await start_gateway(web_uploads="open")
    await start_worker(gateway, model="py:tests.detectors:fixed")  # jobs finish, so long polls end
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "run", f"{gateway.url}/v1/openapi.json",
        "--checks", CHECKS, "--max-examples", os.environ.get("DETECTBOT_SCHEMATHESIS_EXAMPLES", "12"),
        "--seed", "1", "-H", f"Authorization: Bearer {ADMIN_KEY}", "--request-timeout", "70", "--workers", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 240)
    report = out.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    assert "generated" in report and " failed" not in report.split("Test cases:")[-1], report[-2000:]


async def test_the_requests_that_once_answered_500(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    headers = gateway.headers()
    bad_part_headers = b'--b\r\nContent-Disposition: form-data; name="image"\r\nBad Header\r\n\r\nxx\r\n--b--\r\n'
    cases = [
        ("POST", "/v1/jobs", {"Content-Type": "multipart/form-data; boundary=b"}, bad_part_headers),
        ("POST", "/v1/jobs", {"Content-Type": "multipart/form-data"}, b"--x\r\n\r\nabc\r\n--x--\r\n"),
        ("GET", "/v1/worker/jobs/abc/input?exp=9999999999&sig=%C3%A9%C3%A9", {}, b""),
        ("GET", "/v1/dead-jobs?limit=abc", gateway.headers(admin=True), b""),
    ]
    for method, path, extra, body in cases:
        async with http.request(method, f"{gateway.url}{path}", headers={**headers, **extra}, data=body) as response:
            assert 400 <= response.status < 500, (path, response.status, await response.text())
            assert (await response.json())["message"].endswith(".")

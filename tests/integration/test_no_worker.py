"""No worker running: a photo waits, safe, and says so in the person's language; an admin hears once when the
workers have been gone a while and once when they are back; when a worker starts, the photo is done as usual.

Every worker is stopped (none was started); the gateway's thresholds are shortened (notice after 1 s, the admins'
alert after 2 s) so the scenario runs in seconds, and it holds the photo in line for ``DETECTBOT_SOAK_S`` (12 s
by default). ``DETECTBOT_SOAK_DEFAULTS=1`` runs it with the shipped thresholds (30 s, 120 s) instead:
``DETECTBOT_SOAK_DEFAULTS=1 DETECTBOT_SOAK_S=600 pytest --timeout 1200 tests/integration/test_no_worker.py`` is
the ten-minute run the issue asks for.
"""

from __future__ import annotations

import logging
import os
import re
import time

import aiohttp

from queue_gateway.public import texts
from tests.chat import ChatDriver, StartChat, eta_pattern, matches
from tests.conftest import eventually
from tests.images import jpeg

log = logging.getLogger(__name__)
SHORT = {"no_worker_notice_s": 1.0, "no_worker_alert_s": 2.0, "workers_check_s": 0.2}
THRESHOLDS: dict[str, float] = {} if os.environ.get("DETECTBOT_SOAK_DEFAULTS") == "1" else SHORT
SOAK_S = float(os.environ.get("DETECTBOT_SOAK_S", "12"))
ADMIN = 1


def alert_pattern(key: str, lang: str | None = None) -> re.Pattern[str]:
    """The admins' sentence ``key`` (``alert_no_worker``: plural, with a count) with any duration."""
    sentence = (
        texts.ntext(key, 1, lang, duration="\0") if key in texts.PLURALS else texts.text(key, lang, duration="\0")
    )
    return re.compile(re.escape(sentence).replace("\0", eta_pattern(lang)))


def alerts(chat: ChatDriver, key: str) -> list[str]:
    found = alert_pattern(key)
    return [text for text in chat.told_in_private(chat.person(ADMIN)) if found.fullmatch(text)]


async def told(chat: ChatDriver, key: str) -> list[str] | None:
    return alerts(chat, key) or None


async def held_in_line(chat: ChatDriver, job_id: str, seconds: float) -> list[str]:
    """Long-poll the job for ``seconds``; every status it had meanwhile (it must not move)."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while (left := deadline - time.monotonic()) > 0:
            url = f"{chat.gateway.url}/v1/jobs/{job_id}?wait={min(left, 10):.1f}"
            async with http.get(url, headers=chat.gateway.headers(admin=True)) as response:
                view = await response.json()
            seen.append(view["status"])
            assert view["waiting_for_worker"] is True and view["eta_s"] is None, view
            assert view["status_text"] == texts.text("no_worker", "ru"), view  # the job speaks its sender's language
    return seen


async def test_a_photo_waits_safely_while_no_worker_runs_and_the_admin_hears_once(start_chat: StartChat) -> None:
    chat = await start_chat(admins=(ADMIN,), gateway=THRESHOLDS)
    person = chat.person(2, language="ru")
    started = time.monotonic()
    sent = await chat.send_photo(person, jpeg())
    shown = await chat.wait_status(sent, matches("no_worker", "ru"), what="the no-worker notice", timeout=45)
    log.info("the no-worker notice showed %.1f s after the photo", time.monotonic() - started)
    assert "~" not in shown and not re.search(r"\d", shown)  # no estimate made up
    assert await eventually(lambda: told(chat, "alert_no_worker"), timeout=150, what="the admin's alert")

    (job,) = await chat.jobs()
    statuses = await held_in_line(chat, job.id, SOAK_S)
    assert set(statuses) <= {"received", "queued"}, statuses  # nothing timed out or failed while it waited
    stats = await chat.command(chat.person(ADMIN), "stats")
    assert any(re.fullmatch(re.escape(texts.text("stats_no_worker", duration="\0")).replace("\0", eta_pattern()), line)
               for line in stats.text.splitlines()), stats.text  # fmt: skip
    assert len(alerts(chat, "alert_no_worker")) == 1  # one alert, however long it lasts

    await chat.start_worker()
    result = await chat.result(sent, timeout=60)
    assert result.image is not None
    back = await eventually(lambda: told(chat, "workers_back"), timeout=20, what="the admin told")
    assert len(back) == 1 and len(alerts(chat, "alert_no_worker")) == 1
    # the status edit goes out beside the result, not before it: it may land a moment after the photo
    await chat.wait_status(sent, matches("done_in", "ru"), what="done, in Russian")

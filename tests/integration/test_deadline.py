"""A model that hangs: its job is killed at the deadline, counted as a delivery, dead after the limit, and its
sender told — while the worker's other slot goes on with everyone else's photos."""

from __future__ import annotations

import time

from tests.conftest import eventually
from tests.images import jpeg, poison_png
from tests.telegram_stack import Stack

HANGING = "py:tests.detectors:hang_on_poison"


async def test_a_hanging_job_is_dead_after_the_limit_and_its_sender_told(start_telegram, start_worker) -> None:
    stack: Stack = await start_telegram(worker=False)
    handle = await start_worker(stack.gateway, model=HANGING, job_timeout_s=2.0, slots=2)
    started = time.monotonic()
    stack.fake.send_document_update(4242, data=poison_png(), file_name="poison.png", mime_type="image/png")
    stack.fake.send_photo_update(5151, data=jpeg(320, 240))  # someone else's photo, at the same time
    [healthy] = await stack.fake.wait_for_call("sendPhoto", lambda c: int(c.params["chat_id"]) == 5151, timeout=30)
    assert healthy.at - started < 10  # not held up behind the hanging one

    async def told() -> str | None:
        for call in stack.fake.calls_of("sendMessage"):
            text = str(call.params.get("text", ""))
            if int(call.params["chat_id"]) == 4242 and "failed several times" in text:
                return text
        return None

    text = await eventually(told, timeout=60, what="the sender to be told")
    assert "took too long" in text
    elapsed = time.monotonic() - started
    assert elapsed < 2 * 3 + 30  # three deadlines and the retries, far below RabbitMQ's 30 minutes

    async with stack.gateway.sessions() as session:
        from sqlalchemy import select

        from db.models import Job

        jobs = {job.origin["chat_id"]: job for job in (await session.scalars(select(Job))).all() if job.origin}
    dead = jobs["4242"]
    assert dead.status == "dead" and dead.error_code == "timeout" and dead.attempts == 3
    assert "took longer than 2 s" in (dead.error or "")
    assert jobs["5151"].status == "delivered"
    assert not handle.task.done()  # the worker itself goes on
    stack.fake.send_photo_update(5151, data=jpeg(300, 200))  # and keeps serving
    await stack.fake.wait_for_call("sendPhoto", lambda c: int(c.params["chat_id"]) == 5151, count=2, timeout=30)

"""The job message as it goes on the wire: persistent, JSON, ``message_id`` = job id."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import DeliveryMode

from queue_gateway.contract import JobMessage


def job_message(body: JobMessage) -> aio_pika.Message:
    """A persistent message whose ``message_id`` is the job id."""
    return aio_pika.Message(
        body=body.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=body.job_id,
        type="detectbot.job.v1",
    )

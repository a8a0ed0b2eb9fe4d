"""The wire contract between the gateway, the workers and the bots: small, typed and versioned.

A leaf module: it imports nothing of ours, so ``worker`` and ``bots`` may import it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1

Platform = Literal["http", "telegram", "discord"]


class DetectParams(BaseModel):
    """What a caller may tune per job; ``None`` means the worker's default."""

    model_config = ConfigDict(extra="forbid")

    conf: float | None = Field(default=None, ge=0.0, le=1.0)
    iou: float | None = Field(default=None, gt=0.0, le=1.0)
    max_det: int | None = Field(default=None, ge=1, le=1000)


class JobMessage(BaseModel):
    """The AMQP message body: URLs and parameters, never image bytes."""

    schema_version: int = SCHEMA_VERSION
    job_id: str
    input_url: str
    result_url: str
    params: DetectParams = DetectParams()


class DetectionOut(BaseModel):
    class_id: int
    label: str
    confidence: float
    box: list[float] = Field(min_length=4, max_length=4)


class ResultMeta(BaseModel):
    """The JSON part of a worker's result upload (the annotated JPEG travels beside it)."""

    schema_version: int = SCHEMA_VERSION
    ok: bool
    worker: str = Field(max_length=120)
    model: str = Field(default="", max_length=120)
    detections: list[DetectionOut] = []
    inference_ms: float = 0.0
    error_code: str | None = Field(default=None, max_length=32)
    error: str | None = Field(default=None, max_length=2000)


class Origin(BaseModel):
    """Where a job came from, so the gateway can answer in the same chat.

    Telegram: ``chat_id``, ``message_id`` (the photo), ``status_message_id`` (our "queued" reply).
    Discord: ``application_id``, ``interaction_token``, ``interaction_created_at``, ``channel_id``.
    """

    model_config = ConfigDict(extra="forbid")

    platform: Platform
    user_id: str | None = None
    language: str | None = Field(default=None, max_length=16)
    chat_id: str | None = None
    message_id: str | None = None
    status_message_id: str | None = None
    application_id: str | None = None
    interaction_token: str | None = Field(default=None, max_length=500)
    interaction_created_at: float | None = None
    channel_id: str | None = None
    group_key: str | None = Field(default=None, max_length=120)
    group_size: int = Field(default=1, ge=1, le=10)
    group_index: int = Field(default=0, ge=0, le=9)

    @field_validator(
        "user_id", "chat_id", "message_id", "status_message_id", "application_id", "channel_id", mode="before"
    )
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class SubmitResponse(BaseModel):
    """``202`` body of ``POST /v1/jobs``."""

    job_id: str
    status: str
    position: int
    status_url: str
    result_url: str
    duplicate: bool = False


class ErrorBody(BaseModel):
    """Every 4xx/5xx body: a stable code and a sentence for a person."""

    error: str
    message: str
    retry_after: int | None = None

"""The wire contract between the gateway, the workers and the bots: small, typed and versioned.

Version 1 of the job message and the result upload (``schema_version``); the HTTP bodies are described by the
gateway's OpenAPI document, built from these models.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, field_validator

SCHEMA_VERSION = 1


def _printable(value: str) -> str:
    """Text a database stores as it is: no control characters, no NUL, no lone surrogates (undecodable bytes)."""
    if not value.isprintable():
        raise ValueError("must be printable text (no control characters)")
    return value


def _scrubbed(value: str) -> str:
    """A worker's own words (a model name, an error), kept storable: NULs dropped, undecodable bytes replaced."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


Platform = Literal["http", "telegram", "discord", "web"]
Text = Annotated[str, AfterValidator(_printable)]
Scrubbed = Annotated[str, AfterValidator(_scrubbed)]
Label = Annotated[Text, Field(min_length=1, max_length=60)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9@:_.-]+$")]
"""A platform's id of a user, chat, channel or message (Telegram: integers; Discord: snowflakes; "@original")."""
LanguageTag = Annotated[str, StringConstraints(max_length=16, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$")]
OutputKind = Literal["photo", "photo+json", "document"]


class DetectParams(BaseModel):
    """What a caller may tune per job; ``None`` means the worker's default."""

    model_config = ConfigDict(extra="forbid")

    conf: float | None = Field(default=None, ge=0.0, le=1.0)
    iou: float | None = Field(default=None, gt=0.0, le=1.0)
    max_det: int | None = Field(default=None, ge=1, le=1000)
    classes: list[Label] | None = Field(default=None, max_length=80)  # keep only these labels
    language: LanguageTag | None = None  # labels on the image in this language
    output: OutputKind | None = None  # how a chat gets the result (workers ignore it)


class JobMessage(BaseModel):
    """The AMQP message body: URLs and parameters, never image bytes."""

    schema_version: int = SCHEMA_VERSION
    job_id: str
    input_url: str
    result_url: str
    params: DetectParams = DetectParams()


class DetectionOut(BaseModel):
    class_id: int
    label: Annotated[Scrubbed, Field(max_length=100)]
    confidence: float
    box: list[float] = Field(min_length=4, max_length=4)


class ResultMeta(BaseModel):
    """The JSON part of a worker's result upload (the annotated JPEG travels beside it)."""

    schema_version: int = SCHEMA_VERSION
    ok: bool
    worker: Annotated[Scrubbed, Field(max_length=120)]
    model: Annotated[Scrubbed, Field(max_length=120)] = ""
    detections: list[DetectionOut] = []
    inference_ms: float = 0.0
    error_code: Annotated[Scrubbed, Field(max_length=32)] | None = None
    error: Annotated[Scrubbed, Field(max_length=2000)] | None = None
    final: bool = True  # False: only this attempt failed (a timeout); the job goes back to the queue


class _OriginBase(BaseModel):
    """Where a job came from, so the gateway can answer in the same chat (sent by bots only)."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id | None = None  # the sender; for a stand-in sender (an anonymous admin, a channel), that chat
    language: LanguageTag | None = None
    message_id: Id | None = None  # the person's message the answer replies to
    status_message_id: Id | None = None  # our "queued" message, edited as the job moves on
    group_key: Annotated[str, StringConstraints(max_length=120, pattern=r"^[A-Za-z0-9@:_.-]+$")] | None = None
    group_size: int = Field(default=1, ge=1, le=10)
    group_index: int = Field(default=0, ge=0, le=9)

    @field_validator(
        "user_id", "message_id", "status_message_id", "chat_id", "application_id", "channel_id",
        mode="before", check_fields=False,
    )  # fmt: skip
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def chat_ref(self) -> str:
        """The chat this job answers in, as ``platform:id`` (pacing, fairness)."""
        raise NotImplementedError


class TelegramOrigin(_OriginBase):
    """A Telegram chat: ``chat_id``; ``message_id`` is the photo."""

    platform: Literal["telegram"] = "telegram"
    chat_id: Id

    @property
    def chat_ref(self) -> str:
        return f"telegram:{self.chat_id}"


class DiscordOrigin(_OriginBase):
    """A Discord interaction: its application, token (15 minutes) and channel."""

    platform: Literal["discord"] = "discord"
    application_id: Id | None = None
    interaction_token: Annotated[str, StringConstraints(max_length=500, pattern=r"^[A-Za-z0-9_.=-]+$")] | None = None
    interaction_created_at: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    channel_id: Id | None = None

    @property
    def chat_ref(self) -> str:
        return f"discord:{self.channel_id}"


Origin = Annotated[TelegramOrigin | DiscordOrigin, Field(discriminator="platform")]
ORIGIN: TypeAdapter[TelegramOrigin | DiscordOrigin] = TypeAdapter(Origin)


def parse_origin(data: Any) -> TelegramOrigin | DiscordOrigin:
    """An origin from its JSON (a dict, or a JSON string); raises ``pydantic.ValidationError``."""
    return ORIGIN.validate_json(data) if isinstance(data, str | bytes) else ORIGIN.validate_python(data)


class ChatSettingsBody(BaseModel):
    """A chat's /settings, as the gateway stores them; an absent (or null) field means the default."""

    model_config = ConfigDict(extra="forbid")

    conf: float | None = Field(default=None, ge=0.05, le=0.95)
    classes: list[Label] | None = Field(default=None, max_length=80)
    output: OutputKind | None = None
    language: LanguageTag | None = None


class SubmitResponse(BaseModel):
    """``202`` body of ``POST /v1/jobs``."""

    job_id: str
    status: str
    position: int
    eta_s: float = 0.0  # about how long until it is done
    language: str | None = None  # the language the chat chose with /settings, if it chose one
    status_url: str
    result_url: str
    duplicate: bool = False


CANCEL_ACTION = "cancel:"
"""The data of a "Cancel" button under a status message: ``cancel:<job id>`` (the gateway adds the button while
the photo waits, the bot handles the press)."""


def cancel_action(job_id: str) -> str:
    return f"{CANCEL_ACTION}{job_id}"


class ErrorCode(StrEnum):
    """The stable ``error`` codes of the gateway's answers; the bots turn each into a sentence for the person."""

    BAD_REQUEST = "bad_request"
    TIMEOUT = "timeout"  # the request's body did not arrive in time
    UNAUTHORIZED = "unauthorized"
    EXPIRED = "expired"
    FORBIDDEN = "forbidden"
    NOT_YOURS = "not_yours"  # someone else's photo (a Cancel button pressed by another person in a group)
    NOT_FOUND = "not_found"
    NOT_READY = "not_ready"
    NOT_DEAD = "not_dead"
    TOO_LATE = "too_late"
    GONE = "gone"
    TOO_MANY_IN_LINE = "too_many_in_line"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_WAITING = "too_many_waiting"  # too many long-polls held open at once
    QUOTA = "quota"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    # the photo itself
    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TOO_MANY_PIXELS = "too_many_pixels"
    CORRUPT = "corrupt"
    TOO_COMPLEX = "too_complex"  # built to be slow to decode: too many scans, segments or chunks


class ErrorBody(BaseModel):
    """Every 4xx/5xx body: a stable code and a sentence for a person."""

    error: str
    message: str
    retry_after: int | None = None  # seconds, also in the Retry-After header
    limit: int | None = None  # the limit that was reached (too_many_in_line, quota)

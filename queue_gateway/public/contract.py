"""The wire contract between the gateway, the workers and the bots: small, typed and versioned.

Version 1 of the job message and the result upload (``schema_version``); the HTTP bodies are described by the
gateway's OpenAPI document, built from these models.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

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
MediaKind = Literal["photo", "clip"]
"""What a job is: a photo, or a GIF or short clip (detected frame by frame, answered with an animation)."""
Prefer = Literal["mp4", "gif", "smallest"]
"""How a clip's animation goes back: ``mp4`` (Telegram's ``sendAnimation``, the web page), ``gif``, or the
``smallest`` of both (Discord shows either inline)."""
ResultType = Literal["image/jpeg", "video/mp4", "image/gif"]
"""What a worker's result is: the annotated JPEG of a photo, or a clip's animation."""


class ErrorCode(StrEnum):
    """Every stable code of the gateway's answers (``ErrorBody.error``), of a worker's result (``ResultMeta``) and of
    a failed job (``JobView.error``): one list, which the bots and the page turn into sentences for a person."""

    # a request that is not right as it is
    BAD_REQUEST = "bad_request"
    BAD_BODY = "bad_body"
    BAD_CHAT = "bad_chat"
    BAD_IDEMPOTENCY_KEY = "bad_idempotency_key"
    BAD_LIMIT = "bad_limit"
    BAD_MULTIPART = "bad_multipart"
    BAD_ORIGIN = "bad_origin"
    BAD_PARAMS = "bad_params"
    BAD_WAIT = "bad_wait"
    BAD_WEBHOOK_URL = "bad_webhook_url"  # not http(s), or a host that is private, loopback or unknown
    WEBHOOKS_OFF = "webhooks_off"  # this gateway has no webhook secret: it sends no webhooks
    BAD_META = "bad_meta"  # a worker's result meta
    MULTIPART_REQUIRED = "multipart_required"
    NO_IMAGE = "no_image"
    NO_META = "no_meta"
    UNSTORABLE = "unstorable"  # the database refused what this request holds (the rest of its batch was stored)
    REQUEST_TIMEOUT = "request_timeout"  # the request's body did not arrive in time
    METHOD_NOT_ALLOWED = "method_not_allowed"
    # who is asking
    UNAUTHORIZED = "unauthorized"
    EXPIRED = "expired"
    FORBIDDEN = "forbidden"
    NOT_YOURS = "not_yours"  # someone else's photo (a Cancel button pressed by another person in a group)
    # the job
    NOT_FOUND = "not_found"
    NOT_READY = "not_ready"
    NOT_DEAD = "not_dead"
    TOO_LATE = "too_late"
    GONE = "gone"
    # limits and load
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
    # a GIF or short clip we do not take (the answer's ``value`` and ``limit`` say by how much)
    CLIP_TOO_LARGE = "clip_too_large"  # bytes
    CLIP_TOO_LONG = "clip_too_long"  # seconds
    CLIP_TOO_MANY_PIXELS = "clip_too_many_pixels"  # pixels a frame
    CLIP_TOO_MANY_FRAMES = "clip_too_many_frames"  # frames to decode (a short clip at a huge frame rate)
    CLIP_UNSUPPORTED = "clip_unsupported"  # a container or codec we do not decode (GIF, MP4/MOV H.264, WebM VP8/9)
    CLIP_CORRUPT = "clip_corrupt"  # cut off, or damaged
    CLIP_TOO_SLOW = "clip_too_slow"  # its frames were not done before the job's deadline (final: a retry is as slow)
    CLIP_OUTPUT_TOO_LARGE = "clip_output_too_large"  # the annotated animation stays over its cap however small
    # why a job failed (a worker's result, or the gateway's own verdict)
    BAD_IMAGE = "bad_image"  # the worker could not decode it
    MODEL_ERROR = "model_error"  # the model raised on it
    JOB_TIMEOUT = "timeout"  # the model ran past the job's deadline (that attempt)
    WORKER_CRASH = "worker_crash"  # it stopped the worker every time
    DEAD = "dead"  # the queue's delivery limit ran out
    FORGOTTEN = "forgotten"  # deleted at its sender's request
    FAILED = "failed"  # a worker's failure without a code of its own


class DetectParams(BaseModel):
    """What a caller may tune per job; ``None`` means the worker's default."""

    model_config = ConfigDict(extra="forbid")

    conf: float | None = Field(default=None, ge=0.0, le=1.0)
    iou: float | None = Field(default=None, gt=0.0, le=1.0)
    max_det: int | None = Field(default=None, ge=1, le=1000)
    classes: list[Label] | None = Field(default=None, max_length=80)  # keep only these labels
    language: LanguageTag | None = None  # labels on the image in this language
    output: OutputKind | None = None  # how a chat gets the result (workers ignore it)


class ClipReturn(BaseModel):
    """How a worker sends a clip's animation back: the format the chat shows best, under a size it takes."""

    prefer: Prefer = "mp4"
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)


class JobMessage(BaseModel):
    """The AMQP message body: URLs and parameters, never image bytes."""

    schema_version: int = SCHEMA_VERSION
    job_id: str
    input_url: str
    result_url: str
    params: DetectParams = DetectParams()
    media: MediaKind = "photo"
    clip: ClipReturn | None = None  # a clip: how its animation goes back
    progress_url: str | None = None  # a clip: where the worker says how far it is ("frame 40 of 120")


class DetectionOut(BaseModel):
    class_id: int
    label: Annotated[Scrubbed, Field(max_length=100)]
    confidence: float
    box: list[float] = Field(min_length=4, max_length=4)


class ClipResult(BaseModel):
    """What a clip gave (``ResultMeta.clip``): its animation, and the most of each class seen at once."""

    duration_s: float = Field(ge=0)  # of the clip, as its frames span it
    frames: int = Field(ge=1)  # the sample times: frames of the animation ("frame 40 of 120")
    frames_detected: int = Field(ge=0)  # distinct frames run through the model
    fps: float = Field(gt=0)  # of the animation
    width: int = Field(ge=1)  # of the animation
    height: int = Field(ge=1)
    most: dict[Annotated[Scrubbed, Field(max_length=100)], int] = Field(default_factory=dict, max_length=1000)
    """label: the most seen in any one frame ("up to 3 persons, 1 dog"), most first"""


class ClipProgress(BaseModel):
    """``POST`` to a clip job's ``progress_url``: how many of its frames the worker has done."""

    done: int = Field(ge=0)
    total: int = Field(ge=1)


class ResultMeta(BaseModel):
    """The JSON part of a worker's result upload (the annotated JPEG, or a clip's animation, travels beside it)."""

    schema_version: int = SCHEMA_VERSION
    ok: bool
    worker: Annotated[Scrubbed, Field(max_length=120)]
    model: Annotated[Scrubbed, Field(max_length=120)] = ""
    detections: list[DetectionOut] = []
    inference_ms: float = 0.0
    conf: float | None = Field(default=None, ge=0.0, le=1.0)  # the confidence threshold it applied
    error_code: ErrorCode | None = None
    error: Annotated[Scrubbed, Field(max_length=2000)] | None = None
    final: bool = True  # False: only this attempt failed (a timeout); the job goes back to the queue
    content_type: ResultType = "image/jpeg"  # of the image beside it
    clip: ClipResult | None = None  # a clip's summary
    limit: float | None = None  # a refused clip: the limit it passed (seconds, bytes, pixels, frames) …
    value: float | None = None  # … and what the clip is, when known


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
    eta_s: float | None = 0.0  # about how long until it is done (None: no worker is running, nobody can say)
    waiting_for_worker: bool = False  # no worker has been running for a while: it waits, safe, for one to start
    status_text: str = ""  # its place in line as a sentence, in the asked language
    # a chat's photo: the language its answers are in (the person's /settings, else the chat's, else the person's
    # own app language); an API client's: the language it asked for in ``params``, if any
    language: str | None = None
    status_url: str
    result_url: str
    duplicate: bool = False
    rerun_of: str | None = None  # the job whose photo this runs again


CANCEL_ACTION = "cancel:"
"""The data of a "Cancel" button under a status message: ``cancel:<job id>`` (the gateway adds the button while
the photo waits, the bot handles the press)."""


def cancel_action(job_id: str) -> str:
    return f"{CANCEL_ACTION}{job_id}"


OBJECTS_ACTION = "objects:"
"""The data of an "Objects" button under a result: ``objects:<job id>`` (the gateway adds it to the result, the bot
handles the press: the objects cut out, as an album)."""


def objects_action(job_id: str) -> str:
    return f"{OBJECTS_ACTION}{job_id}"


class CropView(BaseModel):
    """One object cut out, in ``GET /v1/jobs/{id}/crops``'s ``index.json``."""

    file: str  # its name in the ZIP: 01-bus.jpg …
    label: str
    text: str  # "bus 94%", in the asked language
    confidence: float
    box: list[float]  # x1, y1, x2, y2 in the original photo's pixels


class CropsIndex(BaseModel):
    """``index.json`` of ``GET /v1/jobs/{id}/crops``: the objects, largest first, and what was left out."""

    job_id: str
    language: str
    caption: str  # "5 objects, largest first. 2 more were too small to show."
    objects: list[CropView]
    too_small: int  # under 32 px on a side
    more: int  # beyond the first 10


class ErrorBody(BaseModel):
    """Every 4xx/5xx body: a stable code, a sentence in English for a program's log, and the sentence for a person
    in the language the request asked for (``Accept-Language``, or ``?lang=``)."""

    error: ErrorCode
    message: str
    text: str = ""  # the person's sentence, in the request's language
    retry_after: int | None = None  # seconds, also in the Retry-After header
    limit: int | None = None  # the limit that was reached (too_many_in_line, quota, a clip's seconds or bytes)
    value: float | None = None  # a refused clip: what it is (90 s, 25 MB …), beside the limit


# --- the HTTP API's bodies (the OpenAPI document is built from these) --------------------------------------------


JobStatusName = Literal[
    "received", "queued", "processing", "done", "delivered", "failed", "dead", "cancelled"
]  # fmt: skip


class ImageInfo(BaseModel):
    format: str  # JPEG, PNG, WEBP; a clip: GIF, MP4, MOV, WEBM
    width: int
    height: int


class ClipView(BaseModel):
    """A clip job's clip: what it is, and (once done) its animation and what it found."""

    duration_s: float  # its length
    source_frames: int  # the frames it holds
    container: str  # gif, mp4, mov, webm
    codec: str
    frames: int | None = None  # of the animation (the sample times), once done
    frames_detected: int | None = None
    fps: float | None = None
    width: int | None = None  # of the animation
    height: int | None = None
    most: dict[str, int] | None = None  # label: the most seen in any one frame


class Progress(BaseModel):
    """How far a worker is with a clip: frame ``done`` of ``total``."""

    done: int
    total: int


class Timings(BaseModel):
    queue_wait_s: float | None
    processing_s: float | None
    inference_ms: float | None
    total_s: float | None
    delivered_after_s: float | None


class JobError(BaseModel):
    code: str  # an ``ErrorCode``; a worker of another version may have its own
    message: str | None  # the worker's or the gateway's own words (English)
    text: str  # the person's sentence, in the asked language ("Sorry, I couldn't process that photo: …")


WebhookState = Literal["waiting", "pending", "delivered", "failed", "gone"]


class WebhookView(BaseModel):
    """A job's completion webhook: ``waiting`` for the job to finish, ``pending`` (due, or failing and tried again
    later), ``delivered``, ``failed`` (its retry window ran out) or ``gone`` (the receiver answered 410)."""

    url: str
    state: WebhookState
    attempts: int
    event_id: str  # the webhook-id header of every try
    last_status: int | None = None  # the receiver's last HTTP status
    next_attempt_at: float | None = None
    delivered_at: float | None = None


class WebhookFailure(BaseModel):
    """A webhook that is failing now, or failed for good, as ``/admin`` lists it."""

    job_id: str
    host: str  # the receiver's host (its full URL may hold a token)
    state: WebhookState
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: float | None
    created_at: float


class WebhooksResponse(BaseModel):
    """``GET /v1/webhooks`` (admin): how many wait to be sent, and the failing ones, newest first."""

    pending: int
    failing: list[WebhookFailure]


class JobView(BaseModel):
    """``GET /v1/jobs/{id}``: a job as its sender sees it, every sentence already in the asked language."""

    job_id: str
    status: JobStatusName
    finished: bool
    platform: str
    position: int  # its place in line (0 once a worker has it)
    eta_s: float | None  # about how long until it is done (0 once finished; None while no worker is running)
    waiting_for_worker: bool = False  # in line, and no worker has been running for a while
    attempts: int
    cache_hit: bool
    language: str  # the language its sentences are in
    status_text: str  # "Queued — #3 in line, about 4 s.", "Working on it…", "Done in 1.4 s.", "Cancelled." …
    image: ImageInfo
    params: DetectParams
    timestamps: dict[str, float | None]
    timings: Timings
    status_url: str
    result_url: str
    crops_url: str | None = None  # its objects cut out (a ZIP), once it found any
    detections: list[DetectionOut] | None = None  # a photo's (a clip's are in ``clip.most``)
    caption: str | None = None  # "4 persons, 1 bus" (a clip: "up to 3 persons, 1 dog · 3.0 s"), in the asked language
    labels: dict[str, str] = {}  # each label found, as the image shows it in the asked language
    model: str | None = None
    error: JobError | None = None
    webhook: WebhookView | None = None  # its completion webhook (left out of the webhook's own event)
    rerun_of: str | None = None  # the job whose stored photo this one ran again
    media: MediaKind = "photo"
    clip: ClipView | None = None  # a clip's
    progress: Progress | None = None  # a clip being processed: frame ``done`` of ``total``
    result_type: str | None = None  # the content type of GET …/result: image/jpeg, video/mp4 or image/gif


class CancelResponse(BaseModel):
    job_id: str
    status: Literal["cancelled"]
    cancelled: list[str]  # this job, or every photo of its album still in line


class StatusMessageResponse(BaseModel):
    job_id: str
    status: str


class DeletedResponse(BaseModel):
    job_id: str
    status: Literal["deleted"]
    was: str  # its status before


class RequeueResponse(BaseModel):
    job_id: str
    status: Literal["received"]


RerunMode = Literal["lower", "higher", "found", "settings"]
"""How a photo is run again: a lower or a higher confidence, only the classes found, or the sender's /settings now."""

RERUN_ACTION = "rerun:"
"""The data of a re-run button under /history: ``rerun:<mode>:<job id>``."""


def rerun_action(mode: RerunMode, job_id: str) -> str:
    return f"{RERUN_ACTION}{mode}:{job_id}"


def parse_rerun_action(data: str) -> tuple[RerunMode, str] | None:
    """``(mode, job id)`` of a re-run button's data, or None for anything else."""
    mode, _, job_id = data.removeprefix(RERUN_ACTION).partition(":")
    for known in get_args(RerunMode):
        if mode == known and job_id:
            return known, job_id
    return None


class HistoryEntry(BaseModel):
    """One photo in a person's /history."""

    job_id: str
    number: int  # 1: the newest
    received_at: float
    status: JobStatusName
    text: str  # "1. 2 h ago — 4 persons, 1 bus", in the asked language
    found: dict[str, int]  # label: how many
    gone: bool  # its photo is no longer kept: it cannot run again
    rerun_of: str | None = None
    reruns: dict[RerunMode, str]  # what it may run again with, and each one's button ("#2 · Lower")


class HistoryResponse(BaseModel):
    """``GET /v1/people/{platform}/{user_id}/history?chat=…``: a person's last photos in a chat, newest first."""

    entries: list[HistoryEntry]
    text: str  # the list as the bots show it
    language: str


class RerunBody(BaseModel):
    """``POST /v1/jobs/{id}/rerun``: run a finished job's stored photo again, as a new job."""

    model_config = ConfigDict(extra="forbid")

    mode: RerunMode
    user_id: Id | None = None  # a bot's: the person asking, who must have sent the photo
    origin: Origin | None = None  # a bot's: where to answer (Discord: the new interaction)


class ForgetBody(BaseModel):
    """``POST /v1/forget``: one person of a chat platform."""

    model_config = ConfigDict(extra="forbid")

    platform: Literal["telegram", "discord"]
    user_id: Id


class ForgetResponse(BaseModel):
    forgotten: int  # how many of their jobs were deleted
    text: str  # what the bots say, in the asked language


class StatusMessageBody(BaseModel):
    """``POST /v1/jobs/{id}/status-message``: the bot's "queued" message."""

    model_config = ConfigDict(extra="forbid")

    message_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | int

    @property
    def value(self) -> str:
        return str(self.message_id)


class CancelBody(BaseModel):
    """``POST /v1/jobs/{id}/cancel``: a bot names the chat user asking (only the sender may cancel)."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id | None = None


class DeadJob(BaseModel):
    job_id: str
    platform: str
    reason: str | None
    attempts: int
    dead_at: float | None


class DeadJobsResponse(BaseModel):
    jobs: list[DeadJob]
    summary: str  # "3 dead jobs, newest first:" or "No dead jobs. All good.", in the asked language
    text: str  # the list as the bots' /dlq shows it


class Window(BaseModel):
    since: float
    until: float


class JobCounts(BaseModel):
    received: int
    done: int
    delivered: int
    failed: int
    dead: int
    by_platform: dict[str, int]
    waiting_now: dict[str, int]


class Percentiles(BaseModel):
    p50: float | None
    p95: float | None
    count: int  # the jobs measured


class QueueNow(BaseModel):
    depth: int
    consumers: int


class WorkerNow(BaseModel):
    name: str
    model: str | None
    last_seen_at: float


class LabelCount(BaseModel):
    label: str
    count: int
    text: str  # the label in the asked language


class HourRow(BaseModel):
    hour: int  # 0 for the window's first hour
    start: float  # its start, Unix time
    jobs: int  # jobs received in it
    p95_s: float | None  # p95 end-to-end latency of the jobs finished in it


class StatsResponse(BaseModel):
    """``GET /v1/stats``: the last 24 h, and the same as the bots' /stats shows it (``text``, ``lines``)."""

    window: Window
    jobs: JobCounts
    latency_s: dict[str, Percentiles]
    queue: QueueNow | None
    workers: list[WorkerNow]
    workers_online: int | None = None  # the job queue's consumers now (None: the broker is out of reach)
    no_worker_since: float | None = None  # when the last worker went away, while none runs
    dead_waiting: int
    cache_hits: int
    top_labels: list[LabelCount]
    hourly: list[HourRow]
    language: str
    stage_names: dict[str, str]  # queue_wait, processing, end_to_end as the asked language names them
    lines: dict[str, str]  # each line of the text by name (header, jobs, queue …), in the asked language
    text: str


class PrivacyResponse(BaseModel):
    retention_days: int
    language: str
    text: str


class WebSession(BaseModel):
    token: str
    expires_at: int


class PageTexts(BaseModel):
    """``GET /v1/texts``: the web pages' own labels in one language (every other sentence comes rendered)."""

    lang: str
    languages: list[str]
    texts: dict[str, str]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] | None = None  # for an admin key: each check and what failed


class ProgressAck(BaseModel):
    job_id: str
    recorded: bool  # false: the job is not in this worker's hands (finished, cancelled, sent again)


class ResultAck(BaseModel):
    job_id: str
    outcome: Literal["applied", "repeated", "not_found", "gone", "exhausted"]

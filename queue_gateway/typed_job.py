"""A job row read once, typed: its origin parsed (``TelegramOrigin | DiscordOrigin | None``), its parameters
(``DetectParams``), the language its sentences are in (decided once, at intake), and the chat it answers in.

Everything past the database edge that needs these (delivery, the progress updater, the HTTP view) asks a
:class:`TypedJob`, never the row's raw dicts.
"""

from __future__ import annotations

from dataclasses import dataclass

from db.models import Job
from queue_gateway.public import texts
from queue_gateway.public.contract import DetectParams, DiscordOrigin, TelegramOrigin, parse_origin


@dataclass(frozen=True, slots=True)
class TypedJob:
    row: Job
    origin: TelegramOrigin | DiscordOrigin | None
    params: DetectParams
    language: str

    @classmethod
    def of(cls, job: Job) -> TypedJob:
        params = DetectParams.model_validate(job.params or {})
        origin = parse_origin(job.origin) if job.origin else None
        # intake wrote the chat's (or the person's) choice into the parameters; a job from before that, or an
        # HTTP client's, speaks its origin's language or English
        language = texts.language(params.language or (origin.language if origin else None))
        return cls(job, origin, params, language)

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def chat(self) -> str | None:
        """The chat it answers in, as ``platform:id`` (pacing, progress), or None for an HTTP or web job."""
        return self.origin.chat_ref if self.origin is not None else None

    @property
    def is_group(self) -> bool:
        """A Telegram group or channel (negative ids): twenty messages a minute, not one a second."""
        return isinstance(self.origin, TelegramOrigin) and self.origin.chat_id.startswith("-")

    @property
    def output(self) -> str:
        return self.params.output or "photo"

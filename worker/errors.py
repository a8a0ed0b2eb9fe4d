"""The worker's errors::

    WorkerError                   never raised itself
    ├── ModelUnavailable          the model cannot be found, built, exported or loaded (the worker cannot start)
    ├── BrokerUnreachable         RabbitMQ did not answer at start, after retries (the worker cannot start)
    ├── BadImage                  the photo cannot be decoded: a final failure for the job, told to its sender
    │   └── BadClip               a clip we do not take (``code``, ``limit``, ``value``): final, told to its sender
    │       └── ClipTooSlow       the clip's frames could not be done before its deadline: final as well
    ├── InferenceCrashed          the inference process died on the job: it goes back to the queue
    ├── JobTimedOut               the job ran past its deadline; its process was killed: back to the queue
    └── GatewayLinkError          the gateway, reached through the job's signed links
        ├── Gone                  nothing left to do for the job (finished, cancelled, deleted): ack it
        ├── Refused               refused for good (a bad link, a bad request): dead-letter it
        └── Unreachable           kept failing for the whole retry window: back to the queue

``str()`` of each is one sentence for a log line or for the person who runs the worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from queue_gateway.public.clips import ClipProblem
from queue_gateway.public.contract import ErrorCode
from queue_gateway.runtime.errors import CannotStart


class WorkerError(Exception):
    """Anything the worker itself decides went wrong."""


class ModelUnavailable(WorkerError, CannotStart):
    """The model cannot be found, built, exported or loaded; ``str()`` says what to set."""

    exit_code = 3


class BrokerUnreachable(WorkerError, CannotStart):
    """RabbitMQ did not answer at start; ``str()`` names DETECTBOT_AMQP_URL."""


class BadImage(WorkerError, ValueError):
    """The photo is not an image we can decode: unreadable, unsupported, corrupt or too many pixels."""


class BadClip(BadImage, ClipProblem):
    """A GIF or video we do not take: too long, too large, too many pixels or frames, not a format we know, or
    corrupt (``queue_gateway.public.clipprobe`` finds most of these; the engine the rest while it decodes).
    ``code`` is one of the gateway's clip error codes; ``limit`` and ``value`` are the limit that was passed and
    what the clip is (seconds, bytes, pixels or frames), for the person's sentence."""

    def __init__(
        self, code: ErrorCode, message: str, *, limit: float | None = None, value: float | None = None
    ) -> None:
        ClipProblem.__init__(self, code, message, limit=limit, value=value)

    @classmethod
    def of(cls, problem: ClipProblem) -> BadClip:
        """The worker's error for what the shared probe refused."""
        return cls(problem.code, str(problem), limit=problem.limit, value=problem.value)

    def __reduce__(self) -> tuple[object, ...]:  # crosses the inference process boundary intact
        return _rebuild_clip_error, (type(self), self.code, str(self), self.limit, self.value)


class ClipTooSlow(BadClip):
    """The clip's frames were not done before its deadline (a retry would take as long again)."""


@contextmanager
def clip_errors() -> Iterator[None]:
    """What the shared probe refuses (``ClipProblem``) becomes the worker's ``BadClip`` (a final failure)."""
    try:
        yield
    except BadClip:
        raise
    except ClipProblem as problem:
        raise BadClip.of(problem) from None


def _rebuild_clip_error(
    kind: type[BadClip], code: ErrorCode, message: str, limit: float | None, value: float | None
) -> BadClip:
    return kind(code, message, limit=limit, value=value)


class InferenceCrashed(WorkerError):
    """An inference process died while working on the job."""


class JobTimedOut(WorkerError):
    """The model did not finish the job within its deadline; the process running it was killed."""


class GatewayLinkError(WorkerError):
    """The gateway did not take a request made through a job's signed link."""


class Gone(GatewayLinkError):
    """The gateway has nothing left to do for this job (finished, cancelled, dead or deleted)."""


class Refused(GatewayLinkError):
    """The gateway refused the request for good (bad signature, bad request)."""


class Unreachable(GatewayLinkError):
    """The gateway kept failing for the whole retry window."""

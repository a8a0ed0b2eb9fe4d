"""The worker's errors::

    WorkerError                   never raised itself
    ├── ModelUnavailable          the model cannot be found, built, exported or loaded (the worker cannot start)
    ├── BrokerUnreachable         RabbitMQ did not answer at start, after retries (the worker cannot start)
    ├── BadImage                  the photo cannot be decoded: a final failure for the job, told to its sender
    ├── InferenceCrashed          the inference process died on the job: it goes back to the queue
    ├── JobTimedOut               the job ran past its deadline; its process was killed: back to the queue
    └── GatewayLinkError          the gateway, reached through the job's signed links
        ├── Gone                  nothing left to do for the job (finished, cancelled, deleted): ack it
        ├── Refused               refused for good (a bad link, a bad request): dead-letter it
        └── Unreachable           kept failing for the whole retry window: back to the queue

``str()`` of each is one sentence for a log line or for the person who runs the worker.
"""

from __future__ import annotations

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

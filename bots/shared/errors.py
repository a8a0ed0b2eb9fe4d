"""The bots' errors: what can go wrong between a bot and the gateway::

    BotError                 never raised itself
    ├── GatewayRefused       the gateway answered 4xx: this request will not work as it is (``code`` says why)
    └── GatewayDown          the gateway could not be reached, or answered 5xx: try again later

A handler lets them reach its bot's one error handler, which answers the person in their language.
"""

from __future__ import annotations


class BotError(Exception):
    """Anything that stops a bot from doing what a person asked."""


class GatewayRefused(BotError):
    """The gateway answered with an error; ``code`` is stable, ``message`` is the gateway's English sentence."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: int | None = None, limit: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.limit = limit


class GatewayDown(BotError):
    """The gateway could not be reached, or it is briefly unable to answer (5xx)."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

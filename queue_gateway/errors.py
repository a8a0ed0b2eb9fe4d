"""The gateway's errors, and the one middleware that turns any of them into a JSON answer.

Every error is an answer for the client: an HTTP status, a stable code (``queue_gateway.public.contract.ErrorCode``,
which the bots map to sentences in the person's language) and a sentence in English for HTTP clients.
Handlers raise them; only :func:`error_middleware` turns them into responses::

    GatewayError                  never raised itself
    ├── BadRequest         400    a malformed request: a bad field, body, header or query parameter
    │   └── Unstorable     400    the database refused to store this request's fields (others in its batch were)
    ├── BadImage           4xx    the upload is not a photo we take (empty 400, too large 413, not an image 415 …)
    ├── Unauthorized       401    no API key, an unknown one, or a signed link past its expiry
    ├── Forbidden          403    the key's role may not do this, or a forged or altered signed link
    ├── JobNotFound        404    no such job, or not one this key may see
    ├── RequestTimeout     408    the body did not arrive in time (a slow or stalled client)
    ├── NotReady           409    the job has no result yet
    ├── NotRequeueable     409    only dead or failed jobs can run again
    ├── TooLate            409    the photo is already being processed: it can no longer be cancelled
    ├── JobGone            410    the job's photo and result were deleted (retention, /forget)
    ├── TooManyInLine      429    over one of the sender's limits: photos in line, a minute, a day
    └── Unavailable        503    busy (the queue is full) or the database is away; try again after Retry-After
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import ClassVar

from aiohttp import web

from queue_gateway.public.contract import ErrorBody, ErrorCode
from queue_gateway.runtime import tracing

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GatewayError(Exception):
    """An answer for the client: HTTP status, a stable code, and a sentence for a person."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = ErrorCode.INTERNAL
    message: str = "Something went wrong on our side. Please try again."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)
        self.retry_after = retry_after

    def response(self) -> web.Response:
        return error_response(self.status, str(self.code), self.message, retry_after=self.retry_after)


class BadRequest(GatewayError):
    status = 400
    code = ErrorCode.BAD_REQUEST
    message = "That request is not valid."

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.detail_code = code

    def response(self) -> web.Response:
        return error_response(self.status, self.detail_code or str(self.code), self.message)


class Unstorable(BadRequest):
    """The database refused to store what this request holds (and only this request: the others in its batch
    were stored)."""

    def __init__(self) -> None:
        super().__init__(
            "This request holds something that cannot be stored (check its fields for unusual characters).",
            code="unstorable",
        )


class BadImage(GatewayError):
    """An upload we will not take; its code says why (``empty``, ``too_large``, ``not_an_image`` …)."""

    def __init__(self, code: ErrorCode, message: str, status: int) -> None:
        super().__init__(message)
        self.image_code = code
        self.image_status = status

    def response(self) -> web.Response:
        return error_response(self.image_status, str(self.image_code), self.message)


class Unauthorized(GatewayError):
    status = 401
    code = ErrorCode.UNAUTHORIZED
    message = "An API key is required (Authorization: Bearer <key>)."


class LinkExpired(Unauthorized):
    code = ErrorCode.EXPIRED
    message = "This link has expired."


class Forbidden(GatewayError):
    status = 403
    code = ErrorCode.FORBIDDEN
    message = "This API key may not do that."


class NotYours(Forbidden):
    code = ErrorCode.NOT_YOURS
    message = "Only the person who sent the photo can cancel it."


class RequestTimeout(GatewayError):
    """The request's body did not arrive within ``upload_timeout_s`` (a slow or stalled client)."""

    status = 408
    code = ErrorCode.TIMEOUT
    message = "The upload took too long to arrive. Please try again."


class JobNotFound(GatewayError):
    status = 404
    code = ErrorCode.NOT_FOUND
    message = "There is no such job."


class NotReady(GatewayError):
    status = 409
    code = ErrorCode.NOT_READY
    message = "The job has no result yet. Try again shortly."


class NotRequeueable(GatewayError):
    status = 409
    code = ErrorCode.NOT_DEAD
    message = "Only dead or failed jobs can be requeued."


class TooLate(GatewayError):
    status = 409
    code = ErrorCode.TOO_LATE
    message = "It is already being processed, or finished: it can no longer be cancelled."


class JobGone(GatewayError):
    status = 410
    code = ErrorCode.GONE
    message = "This job's photo and result were deleted."


class TooManyInLine(GatewayError):
    """Over one of the sender's limits (photos in line, photos a minute, photos a day): nothing was kept."""

    status = 429
    code = ErrorCode.TOO_MANY_IN_LINE
    message = "You already have photos in line. Please wait for them first."

    def __init__(
        self, message: str, *, retry_after: int, code: ErrorCode = ErrorCode.TOO_MANY_IN_LINE, limit: int | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.detail_code = code
        self.limit = limit

    def response(self) -> web.Response:
        return error_response(
            self.status, str(self.detail_code), self.message, retry_after=self.retry_after, limit=self.limit
        )


class Unavailable(GatewayError):
    """Busy (the queue is full) or the database is away: nothing was kept; try again after ``retry_after``."""

    status = 503
    code = ErrorCode.UNAVAILABLE
    message = "The service is briefly unavailable. Please try again in a moment."

    def __init__(self, message: str | None = None, *, retry_after: int, code: ErrorCode | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.detail_code = code

    def response(self) -> web.Response:
        return error_response(
            self.status, str(self.detail_code or self.code), self.message, retry_after=self.retry_after
        )


def error_response(
    status: int, code: str, message: str, *, retry_after: int | None = None, limit: int | None = None
) -> web.Response:
    body = ErrorBody(error=code, message=message, retry_after=retry_after, limit=limit)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response(body.model_dump(exclude_none=True), status=status, headers=headers)


@web.middleware
async def tracing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Each request in a span, under the caller's trace (its ``traceparent`` header), when tracing is on."""
    if not tracing.enabled():
        return await handler(request)
    route = request.match_info.route.resource
    name = f"gateway {request.method} {route.canonical if route is not None else request.path}"
    with tracing.span(name, parent=request.headers, job_id=request.match_info.get("job_id")):
        return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return GatewayError().response()

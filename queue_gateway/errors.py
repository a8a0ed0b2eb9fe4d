"""The gateway's errors, and the one middleware that turns any of them into a JSON answer.

Every error is an answer for the client: an HTTP status, a stable code (``ErrorCode``), a sentence in English for a
program's log, and the person's sentence in the language the request asked for. Handlers raise them; only
:func:`error_middleware` turns them (and the signed links' :class:`~queue_gateway.signing.SignatureError`, and
aiohttp's own ``HTTPException``) into responses::

    GatewayError                  never raised itself
    ├── BadRequest         400    a malformed request: a bad field, body, header or query parameter (its code
    │                             says which)
    │   └── Unstorable     400    the database refused to store this request's fields (others in its batch were)
    ├── BadImage           4xx    the upload is not a photo we take (empty 400, too large 413, not an image 415,
    │                             too slow to decode 422 …)
    ├── Unauthorized       401    no API key, or an unknown one
    │   └── LinkExpired    401    a signed link past its expiry
    ├── Forbidden          403    the key's role may not do this, or a forged or altered signed link
    │   └── NotYours       403    only the person who sent the photo may cancel it
    ├── JobNotFound        404    no such job, or not one this key may see
    ├── RequestTimeout     408    the body did not arrive in time (a slow or stalled client)
    ├── NotReady           409    the job has no result yet
    ├── NotRequeueable     409    only dead or failed jobs can run again
    ├── TooLate            409    the photo is already being processed: it can no longer be cancelled
    ├── JobGone            410    the job's photo and result were deleted (retention, /forget)
    ├── TooManyInLine      429    over one of the sender's limits: photos in line, a minute, a day, long-polls
    └── Unavailable        503    busy (the queue is full) or the database is away; try again after Retry-After
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import ClassVar

from aiohttp import web

from queue_gateway.lang import requested_language
from queue_gateway.public import texts
from queue_gateway.public.contract import ErrorBody, ErrorCode
from queue_gateway.runtime import tracing
from queue_gateway.signing import SignatureError, SignatureExpired, SignatureMissing

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GatewayError(Exception):
    """An answer for the client: an HTTP status, a stable code, and a sentence.

    ``status`` and ``code`` are each class's defaults; an instance may carry its own (``BadRequest`` names the
    field at fault, ``BadImage`` the problem and its status). ``statuses`` are those the OpenAPI document lists.
    """

    status: ClassVar[int] = 500
    statuses: ClassVar[tuple[int, ...]] = ()
    code: ErrorCode = ErrorCode.INTERNAL
    message: str = "Something went wrong on our side. Please try again."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        limit: int | None = None,
    ) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)
        if code is not None:
            self.code = code
        self.http_status = status or type(self).status
        self.retry_after = retry_after
        self.limit = limit

    @classmethod
    def documented(cls) -> tuple[int, ...]:
        return cls.statuses or (cls.status,)

    def body(self, language: str | None) -> ErrorBody:
        text = texts.for_error(self.code, language, retry_after=self.retry_after, limit=self.limit)
        return ErrorBody(error=self.code, message=self.message, text=text, retry_after=self.retry_after,
                         limit=self.limit)  # fmt: skip


class BadRequest(GatewayError):
    status = 400
    code = ErrorCode.BAD_REQUEST
    message = "That request is not valid."


class Unstorable(BadRequest):
    """The database refused to store what this request holds (and only this request: the others in its batch
    were stored)."""

    code = ErrorCode.UNSTORABLE
    message = "This request holds something that cannot be stored (check its fields for unusual characters)."


class BadImage(GatewayError):
    """An upload we will not take; its code says why (``empty``, ``too_large``, ``not_an_image`` …)."""

    status = 400
    statuses = (400, 413, 415, 422)

    def __init__(self, code: ErrorCode, message: str, status: int) -> None:
        super().__init__(message, code=code, status=status)


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


class JobNotFound(GatewayError):
    status = 404
    code = ErrorCode.NOT_FOUND
    message = "There is no such job."


class RequestTimeout(GatewayError):
    """The request's body did not arrive within ``upload_timeout_s`` (a slow or stalled client)."""

    status = 408
    code = ErrorCode.REQUEST_TIMEOUT
    message = "The upload took too long to arrive. Please try again."


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
    """Over one of the sender's limits (photos in line, a minute, a day; long-polls): nothing was kept."""

    status = 429
    code = ErrorCode.TOO_MANY_IN_LINE
    message = "You already have photos in line. Please wait for them first."


class Unavailable(GatewayError):
    """Busy (the queue is full) or the database is away: nothing was kept; try again after ``retry_after``."""

    status = 503
    code = ErrorCode.UNAVAILABLE
    message = "The service is briefly unavailable. Please try again in a moment."


def signature_error(error: SignatureError) -> GatewayError:
    """A signed link that does not hold: missing (401), expired (401), or forged or altered (403)."""
    if isinstance(error, SignatureMissing):
        return Unauthorized("This link needs its signature (exp and sig).")
    if isinstance(error, SignatureExpired):
        return LinkExpired()
    return Forbidden(f"This link is not valid: {error}.")


_HTTP_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED, 413: ErrorCode.TOO_LARGE}


def error_response(request: web.Request, error: GatewayError) -> web.Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    body = error.body(requested_language(request))
    return web.json_response(body.model_dump(mode="json"), status=error.http_status, headers=headers)


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
    """The one place errors become answers, by their type."""
    try:
        return await handler(request)
    except GatewayError as exc:
        return error_response(request, exc)
    except SignatureError as exc:
        return error_response(request, signature_error(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, ErrorCode.BAD_REQUEST)
        return error_response(request, GatewayError(exc.reason + ".", code=code, status=exc.status))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, GatewayError())

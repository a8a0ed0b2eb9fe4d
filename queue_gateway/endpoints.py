"""Every HTTP route with what it takes and what it answers: one table that aiohttp serves and the OpenAPI document
is built from (``queue_gateway.openapi``), so the document lists every status a route can answer.

A handler module declares its routes on its own :class:`Endpoints`::

    endpoints = Endpoints()

    @endpoints.get("/v1/jobs/{job_id}", auth="view", ok={200: JobView}, errors=(JobNotFound,), query=WAIT)
    async def get_job(request: web.Request) -> web.Response:
        \"\"\"A job's status, stage timestamps and detections.\"\"\"

``auth`` names who may call it, and brings the errors that go with it (no key: 401; a role too low: 403; a signed
link: 401/403); every route that reads the database may answer 503. ``json_body`` validates a request body against
its model (400 with the field at fault), and :func:`answer` sends a response model.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from queue_gateway.errors import BadRequest, Forbidden, GatewayError, JobGone, Unauthorized, Unavailable
from queue_gateway.public.contract import ErrorCode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)

Auth = Literal["public", "client", "bot", "admin", "view", "worker"]
"""public: no key. client: any API key (or a browser token). bot / admin: at least that role. view: a key, or the
signed link handed out at submission. worker: a worker's signed link."""

Body = type[BaseModel] | str  # a JSON model, or a media type ("image/jpeg", "text/html" …)


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Literal["query", "header", "path"]
    schema: Mapping[str, object]
    description: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    auth: Auth
    ok: Mapping[int, Body]
    errors: tuple[type[GatewayError], ...] = ()
    request: Body | Literal["upload", "result"] | None = None
    params: tuple[Param, ...] = ()
    database: bool = True  # reads or writes the database: may answer 503 while it is away

    def statuses(self) -> dict[int, list[type[GatewayError]]]:
        """Every error status this route may answer, with the errors behind each."""
        errors: list[type[GatewayError]] = list(self.errors)
        if self.auth in ("client", "bot", "admin", "view"):
            errors.append(Unauthorized)
        if self.auth in ("bot", "admin", "view", "worker"):
            errors.append(Forbidden)
        if self.auth == "worker":
            errors += [Unauthorized, JobGone]
        checked = any(p.where == "query" or ("pattern" in p.schema or "enum" in p.schema) for p in self.params)
        if self.request is not None or checked:
            errors.append(BadRequest)
        if self.database:
            errors.append(Unavailable)
        found: dict[int, list[type[GatewayError]]] = {}
        for error in errors:
            for status in error.documented():
                found.setdefault(status, [])
                if error not in found[status]:
                    found[status].append(error)
        if self.request in ("upload", "result"):
            found.setdefault(413, [])  # the body cap, before any handler runs
        return found


@dataclass
class Endpoints:
    """One module's routes."""

    all: list[Endpoint] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        auth: Auth,
        ok: Mapping[int, Body],
        errors: tuple[type[GatewayError], ...] = (),
        request: Body | Literal["upload", "result"] | None = None,
        params: tuple[Param, ...] = (),
        database: bool = True,
        summary: str | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            doc = summary or (inspect.getdoc(handler) or handler.__name__).split("\n\n")[0].replace("\n", " ")
            self.all.append(
                Endpoint(method, path, handler, doc, auth, ok, errors, request, params, database)
            )  # fmt: skip
            return handler

        return register

    def get(self, path: str, **meta: object) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **meta)  # type: ignore[arg-type]

    def post(self, path: str, **meta: object) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **meta)  # type: ignore[arg-type]

    def patch(self, path: str, **meta: object) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **meta)  # type: ignore[arg-type]

    def delete(self, path: str, **meta: object) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **meta)  # type: ignore[arg-type]

    def add_to(self, app: web.Application) -> None:
        for endpoint in self.all:
            app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)


def answer(model: BaseModel, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A response model as JSON (every field, so the body always matches its schema)."""
    return web.json_response(model.model_dump(mode="json"), status=status, headers=headers)


async def json_body(request: web.Request, model: type[M], hint: str) -> M:
    """The request's JSON body as ``model`` (an empty body is ``{}``); 400 ``bad_body`` with ``hint`` otherwise."""
    try:
        return model.model_validate_json(await request.read() or b"{}")
    except ValidationError as exc:
        raise BadRequest(f"{hint} ({first_error(exc)})", code=ErrorCode.BAD_BODY) from None


def first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error['msg']}" if where else str(error["msg"])

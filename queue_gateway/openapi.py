"""The gateway's OpenAPI 3.1 document, served at ``GET /v1/openapi.json``: built from the route table
(``queue_gateway.endpoints``) and the wire models, so that it lists every route, body and status the gateway
really answers (a test compares it with the routes served; schemathesis checks the answers against it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from queue_gateway.appkeys import endpoints_key
from queue_gateway.endpoints import Endpoint, Endpoints, answer
from queue_gateway.public.contract import DetectParams, DiscordOrigin, ErrorBody, ResultMeta, TelegramOrigin

endpoints = Endpoints()

REF = "#/components/schemas/{model}"
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "public": [],
    "worker": [],
    "client": [{"bearer": []}],
    "bot": [{"bearer": []}],
    "admin": [{"bearer": []}],
    "view": [{"bearer": []}, {"signed": []}],
}
UPLOAD = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP"},
                "params": {"$ref": REF.format(model="DetectParams")},
                "origin": {"$ref": REF.format(model="Origin")},
            },
        }
    },
    "image/*": {"schema": {"type": "string", "format": "binary"}},
}
RESULT = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["meta"],
            "properties": {
                "meta": {"$ref": REF.format(model="ResultMeta")},
                "image": {"type": "string", "format": "binary"},
            },
        }
    }
}


def _models(table: Iterable[Endpoint]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for endpoint in table:
        bodies = [*endpoint.ok.values(), endpoint.request]
        for body in bodies:
            if isinstance(body, type) and issubclass(body, BaseModel):
                found[body.__name__] = body
    for extra in (ErrorBody, DetectParams, TelegramOrigin, DiscordOrigin, ResultMeta):
        found[extra.__name__] = extra
    return list(found.values())


def _content(body: type[BaseModel] | str) -> dict[str, Any]:
    if isinstance(body, str):
        return {body: {}}
    return {"application/json": {"schema": {"$ref": REF.format(model=body.__name__)}}}


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(status): {"description": "OK" if status < 400 else "As documented", "content": _content(body)}
        for status, body in endpoint.ok.items()
    }
    for status, errors in sorted(endpoint.statuses().items()):
        if str(status) in responses:
            continue
        described = "; ".join(dict.fromkeys((error.__doc__ or error.__name__).split("\n")[0] for error in errors))
        responses[str(status)] = {"description": described or "Refused", **{"content": _content(ErrorBody)}}
    operation: dict[str, Any] = {
        "operationId": endpoint.handler.__name__,
        "summary": endpoint.summary,
        "responses": responses,
        "security": SECURITY[endpoint.auth],
    }
    parameters = [
        {
            "name": p.name,
            "in": p.where,
            "required": p.required or p.where == "path",
            "schema": dict(p.schema),
            **({"description": p.description} if p.description else {}),
        }
        for p in endpoint.params
    ]
    if parameters:
        operation["parameters"] = parameters
    if endpoint.request == "upload":
        operation["requestBody"] = {"required": True, "content": UPLOAD}
    elif endpoint.request == "result":
        operation["requestBody"] = {"required": True, "content": RESULT}
    elif endpoint.request is not None:
        operation["requestBody"] = {"content": _content(endpoint.request)}
    return operation


def document(endpoints_served: Iterable[Endpoint]) -> dict[str, Any]:
    table = list(endpoints_served)
    _, definitions = models_json_schema([(m, "serialization") for m in _models(table)], ref_template=REF)
    paths: dict[str, Any] = {}
    for endpoint in table:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "detectbot gateway", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {
                **definitions.get("$defs", {}),
                "Origin": {
                    "oneOf": [
                        {"$ref": REF.format(model="TelegramOrigin")},
                        {"$ref": REF.format(model="DiscordOrigin")},
                    ],
                    "discriminator": {"propertyName": "platform"},
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (DETECTBOT_API_KEYS)"},
                "signed": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "sig",
                    "description": "A signed link handed out by the gateway (with exp)",
                },
            },
        },
        "security": [{"bearer": []}],
    }


class OpenApiDocument(BaseModel):
    """The document itself (an object; its schema is OpenAPI's own)."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]
    security: list[dict[str, Any]]


@endpoints.get("/v1/openapi.json", auth="public", ok={200: OpenApiDocument}, database=False)
async def openapi(request: web.Request) -> web.Response:
    """This document."""
    served: list[Endpoint] = request.app[endpoints_key]
    return answer(OpenApiDocument.model_validate(document(served)))

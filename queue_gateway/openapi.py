"""The gateway's OpenAPI 3.1 document, served at ``GET /v1/openapi.json``; the bodies come from the wire models."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

from queue_gateway.public.contract import (
    ChatSettingsBody,
    DetectParams,
    DiscordOrigin,
    ErrorBody,
    ResultMeta,
    SubmitResponse,
    TelegramOrigin,
)

MODELS = (DetectParams, TelegramOrigin, DiscordOrigin, SubmitResponse, ErrorBody, ResultMeta, ChatSettingsBody)

routes = web.RouteTableDef()

REF = "#/components/schemas/{model}"


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": REF.format(model=schema)}}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_json("ErrorBody")}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
SIGNED = [{"name": n, "in": "query", "required": True, "schema": {"type": "string"}} for n in ("gen", "exp", "sig")]
ADMIN: list[dict[str, list[str]]] = [{"bearer": []}]  # a bot or an admin key
PLATFORM = {
    "name": "platform",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "enum": ["telegram", "discord"]},
}
CHAT = [PLATFORM, {"name": "chat_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}]
PERSON = [PLATFORM, {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}]
JSON_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}
HTML = {"200": {"description": "HTML", "content": {"text/html": {}}}, "404": {"description": "The page is off"}}


def document() -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(m, "serialization") for m in MODELS],
        ref_template=REF,
    )
    upload = {
        "content": {
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
    }
    paths: dict[str, Any] = {
        "/v1/jobs": {
            "post": _op(
                "Submit a photo",
                {
                    "202": {"description": "Accepted", **_json("SubmitResponse")},
                    "200": {"description": "Already accepted with this Idempotency-Key", **_json("SubmitResponse")},
                    "400": _error("Bad input"),
                    "401": _error("No or bad API key"),
                    "403": _error("A client key set an origin (only a bot key may)"),
                    "413": _error("Too large"),
                    "415": _error("Not a JPEG, PNG or WebP"),
                    "429": _error("Over the sender's limits (photos in line, a minute, a day); see Retry-After"),
                    "503": _error("Busy (queue full) or the database is away: try again after Retry-After"),
                },
                requestBody=upload,
                parameters=[
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 200}}
                ],
            )
        },
        "/v1/jobs/{job_id}": {
            "get": _op(
                "A job: status, stage timestamps, detections, caption",
                {"200": {"description": "The job", **JSON_OBJECT}, "404": _error("No such job")},
                parameters=[
                    JOB_ID,
                    {
                        "name": "wait",
                        "in": "query",
                        "schema": {"type": "number", "minimum": 0, "maximum": 60},
                        "description": "seconds to wait for the job to finish",
                    },
                ],
                security=[{"bearer": []}, {"signed": []}],
            ),
            "delete": _op(
                "Delete a job's photo, result and everything that names its sender (its submitter, a bot for its "
                "platform, or an admin); a job still in line is withdrawn",
                {"200": {"description": "Deleted", **JSON_OBJECT}, "404": _error("No such job (or not yours)")},
                parameters=[JOB_ID],
            ),
        },
        "/v1/jobs/{job_id}/result": {
            "get": _op(
                "The annotated JPEG",
                {
                    "200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                    "409": _error("Not finished"),
                    "410": _error("Deleted by retention or /forget"),
                },
                parameters=[JOB_ID],
                security=[{"bearer": []}, {"signed": []}],
            )
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": _op(
                "Cancel a photo that still waits in line (it is never processed nor delivered)",
                {
                    "200": {"description": "Cancelled", **JSON_OBJECT},
                    "403": _error("Not the sender"),
                    "404": _error("No such job (or not yours)"),
                    "409": _error("Already being processed, or finished"),
                },
                parameters=[JOB_ID],
                requestBody={
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"user_id": {"type": "string", "description": "the chat user asking"}},
                            }
                        }
                    }
                },
            )
        },
        "/v1/chats/{platform}/{chat_id}/settings": {
            "get": _op(
                "A chat's /settings (bot key)",
                {"200": {"description": "The settings", **_json("ChatSettingsBody")}},
                parameters=CHAT,
                security=ADMIN,
            ),
            "patch": _op(
                "Change a chat's /settings; null resets a field (bot key)",
                {"200": {"description": "The settings", **_json("ChatSettingsBody")}, "400": _error("Bad value")},
                parameters=CHAT,
                requestBody=_json("ChatSettingsBody"),
                security=ADMIN,
            ),
        },
        "/v1/people/{platform}/{user_id}/settings": {
            "get": _op(
                "A person's own /settings, which win over a chat's (bot key)",
                {"200": {"description": "The settings", **_json("ChatSettingsBody")}},
                parameters=PERSON,
                security=ADMIN,
            ),
            "patch": _op(
                "Change a person's own /settings; null resets a field (bot key)",
                {"200": {"description": "The settings", **_json("ChatSettingsBody")}, "400": _error("Bad value")},
                parameters=PERSON,
                requestBody=_json("ChatSettingsBody"),
                security=ADMIN,
            ),
        },
        "/v1/jobs/{job_id}/status-message": {
            "post": _op(
                "A bot names its 'queued' message, to be edited to 'Done in …' on delivery",
                {"200": {"description": "Recorded", **JSON_OBJECT}},
                parameters=[JOB_ID],
                requestBody={
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["message_id"],
                                "properties": {"message_id": {"type": "string"}},
                            }
                        }
                    }
                },
            )
        },
        "/v1/jobs/{job_id}/requeue": {
            "post": _op(
                "Run a dead or failed job again (admin)",
                {"202": {"description": "Requeued", **JSON_OBJECT}, "409": _error("Not dead or failed")},
                parameters=[JOB_ID],
                security=ADMIN,
            )
        },
        "/v1/dead-jobs": {"get": _op("Dead jobs and their reasons (admin)", {"200": JSON_OBJECT}, security=ADMIN)},
        "/v1/stats": {"get": _op("The last 24 hours (admin)", {"200": JSON_OBJECT}, security=ADMIN)},
        "/v1/stats/chart.png": {
            "get": _op(
                "Jobs per hour and p95 latency (admin)",
                {"200": {"description": "PNG", "content": {"image/png": {}}}},
                security=ADMIN,
            )
        },
        "/v1/forget": {
            "post": _op(
                "Delete one person's images and results",
                {"200": JSON_OBJECT},
                requestBody={
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["platform", "user_id"],
                                "additionalProperties": False,
                                "properties": {
                                    "platform": {"type": "string", "minLength": 1, "maxLength": 16},
                                    "user_id": {"type": "string", "minLength": 1, "maxLength": 64},
                                },
                            }
                        }
                    }
                },
            )
        },
        "/v1/worker/jobs/{job_id}/input": {
            "get": _op(
                "Workers: the input image (signed link; counts an attempt)",
                {
                    "200": {"description": "The image"},
                    "401": _error("Expired"),
                    "403": _error("Forged or altered"),
                    "410": _error("Nothing left to do"),
                },
                parameters=[JOB_ID, *SIGNED],
                security=[],
            )
        },
        "/v1/worker/jobs/{job_id}/result": {
            "post": _op(
                "Workers: the result (signed link); the first one wins",
                {"200": {"description": "Recorded or repeated", **JSON_OBJECT}, "403": _error("Forged or altered")},
                parameters=[JOB_ID, *SIGNED],
                security=[],
                requestBody={
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "meta": {"$ref": REF.format(model="ResultMeta")},
                                    "image": {"type": "string", "format": "binary"},
                                },
                            }
                        }
                    }
                },
            )
        },
        "/": {"get": _op("The web page: upload photos, follow them, see the results", HTML, security=[])},
        "/admin": {"get": _op("The admin dashboard (asks for an admin key)", HTML, security=[])},
        "/static/{name}": {
            "get": _op(
                "The pages' scripts, styles and icons",
                {"200": {"description": "The file"}, "404": _error("No such file, or the page is off")},
                parameters=[{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                security=[],
            )
        },
        "/v1/web/session": {
            "post": _op(
                "A signed browser token for the open web page (DETECTBOT_WEB_UPLOADS=open; 404 otherwise)",
                {
                    "200": {
                        "description": "Send it as Authorization: Bearer <token>; its jobs are its own",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["token", "expires_at"],
                                    "properties": {"token": {"type": "string"}, "expires_at": {"type": "integer"}},
                                }
                            }
                        },
                    },
                    "404": _error("The page is not open to anyone"),
                    "429": _error("Too many new sessions from this address; see Retry-After"),
                },
                security=[],
            )
        },
        "/v1/texts": {
            "get": _op(
                "The web pages' sentences in one language (from the bots' catalogue)",
                {"200": {"description": "{lang, languages, texts, errors, plurals, labels}", **JSON_OBJECT}},
                parameters=[
                    {
                        "name": "lang",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "wanted languages, comma-separated (else Accept-Language)",
                    }
                ],
                security=[],
            )
        },
        "/v1/privacy": {
            "get": _op(
                "What is kept about a person and for how long, in a language",
                {"200": {"description": "{retention_days, text, language}", **JSON_OBJECT}},
                parameters=[{"name": "lang", "in": "query", "schema": {"type": "string", "maxLength": 35}}],
                security=[],
            )
        },
        "/healthz": {"get": _op("The process answers", {"200": JSON_OBJECT}, security=[])},
        "/readyz": {"get": _op("Database and broker reachable", {"200": JSON_OBJECT, "503": JSON_OBJECT}, security=[])},
        "/metrics": {"get": _op("Prometheus exposition", {"200": {"description": "text"}}, security=[])},
        "/v1/openapi.json": {"get": _op("This document", {"200": JSON_OBJECT}, security=[])},
    }
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


@routes.get("/v1/openapi.json")
async def openapi(_request: web.Request) -> web.Response:
    return web.json_response(document())

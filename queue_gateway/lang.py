"""The language a request asks for: ``?lang=`` (a list is fine), else ``Accept-Language`` by weight, else English;
always one the catalogue has. Every sentence the gateway renders for a person (error texts, a job's status, the
stats) is in it."""

from __future__ import annotations

from aiohttp import web

from queue_gateway.public import texts


def negotiate(wanted: str | None, accept_language: str | None) -> str:
    """The first language we have among ``wanted`` (comma-separated), then ``Accept-Language`` by weight."""
    available = texts.languages()
    candidates = [part.strip() for part in (wanted or "").split(",")]
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")[:20]):
        code, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        weighted.append((-weight, index, code.strip()))
    candidates += [code for weight, _, code in sorted(weighted) if weight < 0]
    for code in candidates[:40]:
        short = code.split("-")[0].split("_")[0].lower()
        if short in available:
            return short
    return texts.DEFAULT_LANGUAGE


def requested_language(request: web.BaseRequest) -> str:
    return negotiate(request.query.get("lang"), request.headers.get("Accept-Language"))

"""RFC 9457 problem+json answers: one builder, and the handlers that route every error through it."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from src.services.errors import DomainError

PROBLEM_BASE = "https://weft.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_body(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors:
        body["errors"] = errors
    return body


def problem_response(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = problem_body(
        status=status, slug=slug, title=title, detail=detail, instance=instance, errors=errors
    )
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


_HTTP_SLUGS = {
    400: "bad-request",
    401: "invalid-token",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
}


def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    headers = None
    if exc.status == 401:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    elif exc.slug == "insufficient-scope":
        headers = {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}
    return problem_response(
        status=exc.status,
        slug=exc.slug,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        errors=[error.as_dict() for error in exc.errors],
        headers=headers,
    )


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    if exc.status_code == 404 and detail is None:
        detail = f"No resource at {request.url.path}."
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    return problem_response(
        status=exc.status_code,
        slug=_HTTP_SLUGS.get(exc.status_code, "http-error"),
        title=phrase,
        detail=detail or phrase,
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


def _field_path(loc: tuple[int | str, ...]) -> tuple[str, str]:
    location = str(loc[0]) if loc else "body"
    parts = [str(part) for part in loc[1:]]
    return location, ".".join(parts) if parts else location


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        location, field = _field_path(tuple(error.get("loc", ())))
        if error.get("type") == "json_invalid":
            return problem_response(
                status=400,
                slug="malformed-json",
                title="The body is not valid JSON",
                detail=f"Malformed JSON: {error.get('ctx', {}).get('error', 'cannot parse')}.",
                instance=request.url.path,
            )
        errors.append({"in": location, "field": field, "message": error["msg"]})
    return problem_response(
        status=422,
        slug="validation-error",
        title="The request is not valid",
        detail="; ".join(f"{e['field']}: {e['message']}" for e in errors),
        instance=request.url.path,
        errors=errors,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)

"""RFC 9457 problem+json answers: one builder, and the handlers that route every error through it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from src.services.errors import DomainError, TokenMissing

logger = logging.getLogger("weft.http")

PROBLEM_BASE = "https://weft.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(description: str) -> dict[str, Any]:
    """A route's `responses=` entry for an error it answers, as problem+json."""
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}


NOT_VISIBLE = problem("No such factory, or not in your supply chains")
NO_CONSENT = problem("The factory has not consented to show you its full findings")


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
    if isinstance(exc, TokenMissing):
        headers = {"WWW-Authenticate": "Bearer"}
    elif exc.status == 401:
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


# What SQLAlchemy raises when the database cannot be reached or gives no connection in time: the
# request may well succeed later, so the caller is told to retry rather than shown a 500.
DATABASE_UNAVAILABLE_ERRORS = (
    OperationalError,
    DisconnectionError,
    InterfaceError,
    PoolTimeoutError,
)
DATABASE_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class ProblemKind:
    status: int
    slug: str
    title: str
    detail: str


DATABASE_UNAVAILABLE = ProblemKind(
    503,
    "database-unavailable",
    "Service Unavailable",
    "The database cannot be reached just now; retry after a few seconds.",
)


def log_database_unavailable(path: str, exc: BaseException) -> None:
    """One line with the driver's own message; the caller never sees it."""
    cause = getattr(exc, "orig", None) or exc
    logger.error(
        "database unavailable",
        extra={"path": path, "error": f"{type(cause).__name__}: {cause}".strip()},
    )


def _database_unavailable(request: Request, exc: Exception) -> Response:
    log_database_unavailable(request.url.path, exc)
    return problem_response(
        status=DATABASE_UNAVAILABLE.status,
        slug=DATABASE_UNAVAILABLE.slug,
        title=DATABASE_UNAVAILABLE.title,
        detail=DATABASE_UNAVAILABLE.detail,
        instance=request.url.path,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def _unstorable_value(request: Request, exc: Exception) -> Response:
    """A value the database refuses (PostgreSQL text cannot hold U+0000, a number too large for
    its column) is the caller's to fix, like any invalid field."""
    cause = getattr(exc, "orig", None) or exc
    logger.warning(
        "value refused by the database", extra={"path": request.url.path, "error": str(cause)}
    )
    return problem_response(
        status=422,
        slug="validation-error",
        title="The request is not valid",
        detail=(
            "A value in the request cannot be stored: text may not contain U+0000 characters, "
            "and numbers must fit their field."
        ),
        instance=request.url.path,
    )


_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _database_unavailable_response() -> dict[str, Any]:
    return {
        "description": "The database cannot be reached just now; retry after `Retry-After` seconds",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
        },
    }


def document_database_unavailable(document: dict[str, Any]) -> dict[str, Any]:
    """Every operation may meet a database outage, so every one documents the 503 it answers."""
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in _HTTP_METHODS:
                responses = operation.setdefault("responses", {})
                responses.setdefault("503", _database_unavailable_response())
    return document


def _install_problem_docs(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_database_unavailable(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    """Routes every error through problem+json, and says so in the OpenAPI document."""
    _install_problem_docs(app)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error in DATABASE_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, _database_unavailable)
    app.add_exception_handler(DataError, _unstorable_value)

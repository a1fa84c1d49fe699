"""The OpenAPI document, completed with what every route answers without declaring it: RFC 9457
problem+json error answers (the 401 and 403 of the token dependencies, the 404 of any path with
an id, the 413 of the body limit, the rate limit's 429, the idempotency middleware's 400, 409 and
422), the rate-limit headers, the `Idempotency-Key` parameter on POSTs, and operation ids from the
handlers' `verb_noun` names, so that generated clients call `get_me`, not `get_me_v1_me_get`."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from src.api.idempotency import KEY_PATTERN, MAX_STORED_ANSWER_BYTES
from src.api.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from src.api.rate_limits import is_rate_limited

SCHEMAS = "#/components/schemas/"
PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": SCHEMAS + "ProblemDetails"}}}
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
# FastAPI documents its own 422 body with these; Weft answers problem+json instead.
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


class ProblemFieldError(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    in_: str = Field(alias="in", description="Where: `body`, `query`, `path` or `header`")
    field: str = Field(description="The field's dotted path there, e.g. `findings.3.question`")
    message: str


class ProblemDetails(BaseModel):
    """An RFC 9457 problem: the body of every error answer, as `application/problem+json`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": PROBLEM_BASE + "not-found",
                    "title": "Not found",
                    "status": 404,
                    "detail": "No factory fac_01J9Z3K6Q8R2T4V6X8Z0B2D4F6.",
                    "instance": "/v1/factories/fac_01J9Z3K6Q8R2T4V6X8Z0B2D4F6",
                }
            ]
        }
    )

    type: str = Field(description="A stable URI naming the kind of problem: switch on this")
    title: str = Field(description="A short summary of the kind of problem")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What went wrong with this request")
    instance: str = Field(description="The path the request was made to")
    errors: list[ProblemFieldError] = Field(
        default_factory=list, description="On validation problems: each invalid field"
    )


_STRING = {"type": "string"}
HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Policy": {
        "description": 'The budget: `"default";q=600;w=60` is 600 requests per 60 s window',
        "schema": _STRING,
    },
    "RateLimit": {
        "description": 'What is left of it: `"default";r=598;t=41` is 598, refilled in 41 s',
        "schema": _STRING,
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the "
        "same `Idempotency-Key`",
        "schema": _STRING,
    },
}

IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes the POST safe to retry (draft-ietf-httpapi-idempotency-key-header): the same key "
        "with the same request replays the first answer for 24 h (2xx and 4xx answers up to "
        f"{MAX_STORED_ANSWER_BYTES} bytes); with another request it is a 422; while the first "
        "is still running, a 409. Keys are per client."
    ),
    "schema": {"type": "string", "pattern": KEY_PATTERN, "maxLength": 255},
    "example": "5b8e0c1a-3f2d-4d8e-9b7a-2c6f1e0d9a4b",
}

COMMON_ERRORS = {
    "400": "The request is malformed: unreadable JSON, or a bad cursor",
    "401": "No access token, or one that is invalid, expired or revoked",
    "403": "The token lacks a scope this operation needs",
    "404": "No such resource, or one the token may not see",
    "409": "Conflicts with the current state",
    "413": "The body is too large",
    "422": "The request is not valid",
    "429": "The client's rate limit is spent; retry after `Retry-After` seconds",
}
# What the idempotency middleware adds to the meaning of a POST's 400, 409 and 422.
IDEMPOTENCY_ERRORS = {
    "400": "the `Idempotency-Key` header is not valid",
    "409": "a request with this `Idempotency-Key` is still running (or ran, and its answer "
    "was too large to keep)",
    "422": "the `Idempotency-Key` was used for another request",
}


def operation_id(route: APIRoute) -> str:
    """The handler's name; `complete` tells apart any two handlers that share one."""
    return route.name


def install_openapi(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem = ProblemDetails.model_json_schema(ref_template=SCHEMAS + "{model}")
    schemas.update(problem.pop("$defs", {}) | {"ProblemDetails": problem})
    components["headers"] = components.get("headers", {}) | HEADERS
    components["parameters"] = components.get("parameters", {}) | {
        "IdempotencyKey": IDEMPOTENCY_KEY_PARAMETER
    }
    operations = [
        (path, method, operation)
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    shared = Counter(operation.get("operationId") for _, _, operation in operations)
    for path, method, operation in operations:
        if shared[operation.get("operationId")] > 1:
            operation["operationId"] = re.sub(
                r"\W", "_", f"{operation['operationId']}{path}_{method}"
            )
        _complete_operation(path, method, operation)
    for name in FASTAPI_VALIDATION_SCHEMAS:  # every answer that named them is problem+json now
        schemas.pop(name, None)
    return document


def _complete_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    security = operation.get("security", [])
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    idempotent = method == "post" and bool(security)
    limited = is_rate_limited(path)
    applicable = {
        "400": has_body or idempotent or any(p.get("name") == "cursor" for p in parameters),
        "401": bool(security),
        "403": any(scopes for requirement in security for scopes in requirement.values()),
        "404": any(parameter.get("in") == "path" for parameter in parameters),
        "409": idempotent,
        "413": has_body,
        "422": bool(parameters) or has_body or idempotent,
        "429": limited,
    }
    responses = operation.setdefault("responses", {})
    for status, applies in applicable.items():
        if not applies:
            continue
        response = responses.setdefault(status, {"description": COMMON_ERRORS[status]})
        if idempotent and status in IDEMPOTENCY_ERRORS:
            response["description"] += f"; or {IDEMPOTENCY_ERRORS[status]}"
    for status, response in responses.items():
        if status[:1] in ("4", "5"):
            _as_problem(response)
        headers = response.get("headers", {})
        headers["RateLimit-Policy"] = _header("RateLimit-Policy")
        headers["RateLimit"] = _header("RateLimit")
        if status == "429":
            headers["Retry-After"] = _header("Retry-After")
        if idempotent and status[:1] in ("2", "4"):
            headers["Idempotent-Replayed"] = _header("Idempotent-Replayed")
        if headers:
            response["headers"] = headers
    operation["responses"] = dict(sorted(responses.items()))
    if idempotent:
        operation["parameters"] = [*parameters, {"$ref": "#/components/parameters/IdempotencyKey"}]


def _header(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _as_problem(response: dict[str, Any]) -> None:
    """Documents an error answer as problem+json, unless its route documented another JSON body
    on purpose (the token endpoint's RFC 6749 errors)."""
    content = response.get("content") or {}
    documented = content.get(PROBLEM_MEDIA_TYPE)
    if documented is not None:  # keeps the route's examples
        response["content"] = {PROBLEM_MEDIA_TYPE: documented | PROBLEM_CONTENT[PROBLEM_MEDIA_TYPE]}
        return
    schema = content.get("application/json", {}).get("schema", {})
    on_purpose = bool(schema) and schema.get("$ref", "").removeprefix(SCHEMAS) not in (
        FASTAPI_VALIDATION_SCHEMAS
    )
    if not on_purpose:
        response["content"] = PROBLEM_CONTENT

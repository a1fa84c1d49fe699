"""Pure ASGI middleware: request ids, access logs, metrics, the last-resort 500, body size limits."""

from __future__ import annotations

import logging
import re
import secrets
import time
from functools import lru_cache

import orjson
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.problems import (
    DATABASE_RETRY_AFTER_SECONDS,
    DATABASE_UNAVAILABLE,
    DATABASE_UNAVAILABLE_ERRORS,
    PROBLEM_MEDIA_TYPE,
    log_database_unavailable,
    problem_body,
)
from src.log import request_id_var

logger = logging.getLogger("weft.http")

REQUESTS = Counter(
    "weft_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "weft_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)


@lru_cache(maxsize=1024)
def _metrics(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """The series of one kind of answer, looked up once: `labels()` takes a lock every time."""
    return REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


async def send_problem(
    send: Send,
    status: int,
    slug: str,
    title: str,
    detail: str,
    path: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = orjson.dumps(
        problem_body(status=status, slug=slug, title=title, detail=detail, instance=path)
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Gives every request an id (`X-Request-ID` in and out), logs it, counts it, and turns an
    unhandled exception into a 500 problem with no stack trace for the caller (the log has it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(16)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except DATABASE_UNAVAILABLE_ERRORS as exc:
            # From middleware that reads the database (token keys, idempotency records): the
            # route handlers' 503, which they cannot reach.
            log_database_unavailable(scope["path"], exc)
            if not response_started:
                await send_problem(
                    send_with_id,
                    DATABASE_UNAVAILABLE.status,
                    DATABASE_UNAVAILABLE.slug,
                    DATABASE_UNAVAILABLE.title,
                    DATABASE_UNAVAILABLE.detail,
                    scope["path"],
                    headers=[(b"retry-after", str(DATABASE_RETRY_AFTER_SECONDS).encode())],
                )
        except Exception:
            logger.exception("unhandled error", extra={"path": scope["path"]})
            if not response_started:
                await send_problem(
                    send_with_id,
                    500,
                    "internal-error",
                    "Internal server error",
                    f"Something went wrong on our side; quote request id {request_id}.",
                    scope["path"],
                )
        finally:
            elapsed = time.perf_counter() - started
            route_path = getattr(scope.get("route"), "path", "unmatched")
            requests, latency = _metrics(scope["method"], route_path, status)
            requests.inc()
            latency.observe(elapsed)
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client_id": scope.get("state", {}).get("client_id"),
                    },
                )
            request_id_var.reset(token)


class BodyTooLarge(HTTPException):
    """Raised from `receive`, so FastAPI passes it to the problem handlers like any HTTP error."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(413, f"The body of a request to {path} may be at most {limit} bytes.")


class BodySizeLimitMiddleware:
    """Refuses a body over the limit with 413: at once when `Content-Length` says so, otherwise as
    soon as the streamed bytes pass it, so memory stays flat whatever a client sends."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, import_max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.import_max_bytes = import_max_bytes

    def _limit_for(self, path: str) -> int:
        return self.import_max_bytes if path.startswith("/v1/imports") else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, send, BodyTooLarge(scope["path"], limit).detail)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(scope["path"], limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            if not response_started:
                await self._refuse(scope, send, exc.detail)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, detail: str) -> None:
        await send_problem(
            send,
            413,
            "payload-too-large",
            "Content Too Large",
            detail,
            scope["path"],
            headers=[(b"connection", b"close")],
        )

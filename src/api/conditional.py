"""Conditional GETs for every resource: an `ETag` on each successful JSON GET (weak on list
pages), and an empty 304 when the request's `If-None-Match` already names it.

A route that knows its version cheaply sets `ETag` itself; the middleware then only compares."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.etags import etag_for


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2), which is what If-None-Match uses."""
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


def _header(raw: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """A response header's value; ASGI response header names are lower case."""
    return next((value for key, value in raw if key == name), None)


class ConditionalGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if_none_match = Headers(scope=scope).get("if-none-match")
        start: Message | None = None
        chunks: list[bytes] = []
        passthrough = False

        async def buffered_send(message: Message) -> None:
            nonlocal start, passthrough
            if passthrough:
                await send(message)
                return
            if message["type"] == "http.response.start":
                content_type = _header(message["headers"], b"content-type") or b""
                if message["status"] != 200 or not content_type.startswith(b"application/json"):
                    passthrough = True
                    await send(message)
                    return
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            assert start is not None
            body = b"".join(chunks)
            headers: list[tuple[bytes, bytes]] = start["headers"]
            etag = _header(headers, b"etag")
            if etag is None:
                etag = etag_for(body, weak=body.startswith(b'{"data":')).encode()
                headers = [*headers, (b"etag", etag)]
            if if_none_match and etag_matches(if_none_match, etag.decode("latin-1")):
                unsent = (b"content-length", b"content-type")
                headers = [(key, value) for key, value in headers if key not in unsent]
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffered_send)

"""`Idempotency-Key` on POSTs (draft-ietf-httpapi-idempotency-key-header), as pure ASGI middleware.

For a client with a valid bearer token, a POST carrying the header is claimed in the database in
its own committed transaction before the route runs; the route's answer (2xx or 4xx, up to 1 MB)
is stored when the route has finished, and only then sent, so a client never sees an answer whose
transaction failed to commit. The same key and request again replays that answer; another
request under the key is a 422; a retry while the first still runs is a 409. A 5xx, or an
exception, frees the key so the client may retry."""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.middleware import send_problem
from src.api.problems import DATABASE_RETRY_AFTER_SECONDS, DATABASE_UNAVAILABLE_ERRORS
from src.api.rate_limits import bearer_client_id
from src.db import transaction, utcnow
from src.services.idempotency import (
    Claim,
    ClaimOutcome,
    StoredAnswer,
    claim_key,
    complete_key,
    prune_expired_keys,
    release_key,
)

logger = logging.getLogger("weft.http")

HEADER = "idempotency-key"
REPLAYED_HEADER = (b"idempotent-replayed", b"true")
# The header as an OpenAPI schema documents it: visible ASCII and spaces, at most 255 characters;
# a structured-field string ("...") names the same key as its unquoted contents.
KEY_PATTERN = r"^[ -~]{1,255}$"
_KEY = re.compile(KEY_PATTERN)
MAX_STORED_ANSWER_BYTES = 1024 * 1024
BODY_MEMORY_BYTES = 1024 * 1024
REPLAY_CHUNK_BYTES = 64 * 1024
PRUNE_INTERVAL_SECONDS = 60.0
# Per-hop or per-answer headers; the ones the outer middleware adds are not seen here at all.
UNSTORED_HEADERS = frozenset({b"connection", b"transfer-encoding", b"date", b"server"})


def parse_key(raw: str) -> str | None:
    if not _KEY.match(raw):
        return None
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    return key or None


def _storable(status: int) -> bool:
    return 200 <= status < 300 or 400 <= status < 500


class _RequestBody:
    """The body, hashed with the method and target as it arrives and kept to hand to the route:
    in memory up to 1 MB, in a temporary file beyond (written from a worker thread)."""

    def __init__(self, scope: Scope) -> None:
        target = scope["path"] + ("?" + scope["query_string"].decode("latin-1"))
        self._digest = hashlib.sha256(f"{scope['method']} {target}\n".encode())
        self._file = tempfile.SpooledTemporaryFile(max_size=BODY_MEMORY_BYTES)
        self._size = 0

    @property
    def hash(self) -> str:
        return self._digest.hexdigest()

    def _on_disk(self) -> bool:
        return self._size > BODY_MEMORY_BYTES

    def _write(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self._file.write(chunk)
        self._size += len(chunk)

    async def read(self, receive: Receive) -> bool:
        """Reads the whole body; False if the client went away first."""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return False
            chunk = message.get("body", b"")
            if self._size + len(chunk) > BODY_MEMORY_BYTES:
                await run_in_threadpool(self._write, chunk)
            else:
                self._write(chunk)
            if not message.get("more_body", False):
                self._file.seek(0)
                return True

    def replay(self, receive: Receive) -> Receive:
        remaining = self._size
        sent = False

        async def replaying_receive() -> Message:
            nonlocal remaining, sent
            if sent:
                return await receive()
            if self._on_disk():
                chunk = await run_in_threadpool(self._file.read, REPLAY_CHUNK_BYTES)
            else:
                chunk = self._file.read(REPLAY_CHUNK_BYTES)
            remaining -= len(chunk)
            sent = remaining <= 0
            return {"type": "http.request", "body": chunk, "more_body": not sent}

        return replaying_receive

    def close(self) -> None:
        self._file.close()


@dataclass
class _HeldAnswer:
    """The route's answer, held back until its key is completed, unless it is not to be stored
    (not 2xx/4xx, or over the size limit): then it streams through at once."""

    send: Send
    start: Message | None = None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    complete: bool = False
    streaming: bool = False
    too_large: bool = False

    @property
    def status(self) -> int:
        return int(self.start["status"]) if self.start else 500

    async def __call__(self, message: Message) -> None:
        if self.streaming or message["type"] not in ("http.response.start", "http.response.body"):
            await self.send(message)
            return
        if message["type"] == "http.response.start":
            self.start = message
            if not _storable(message["status"]):
                await self.flush()
            return
        body = message.get("body", b"")
        self.chunks.append(body)
        self.size += len(body)
        self.complete = not message.get("more_body", False)
        if self.size > MAX_STORED_ANSWER_BYTES:
            self.too_large = True
            await self.flush()

    async def flush(self) -> None:
        self.streaming = True
        assert self.start is not None
        await self.send(self.start)
        if self.chunks:
            body = b"".join(self.chunks)
            self.chunks = []
            await self.send(
                {"type": "http.response.body", "body": body, "more_body": not self.complete}
            )

    def answer(self) -> StoredAnswer:
        assert self.start is not None
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in self.start.get("headers", [])
            if name.lower() not in UNSTORED_HEADERS
        ]
        return StoredAnswer(self.status, headers, b"".join(self.chunks))


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._pruned_at = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw_key = Headers(scope=scope).get(HEADER)
        client_id = bearer_client_id(scope) if raw_key is not None else None
        if raw_key is None or client_id is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["client_id"] = client_id  # for the access log
        key = parse_key(raw_key)
        if key is None:
            await send_problem(
                send,
                400,
                "invalid-idempotency-key",
                "The Idempotency-Key header is not valid",
                "An Idempotency-Key is 1 to 255 visible ASCII characters (or a quoted string of them).",
                scope["path"],
            )
            return
        body = _RequestBody(scope)
        try:
            if not await body.read(receive):
                return
            engine: Engine = scope["app"].state.engine
            try:
                claim = await run_in_threadpool(self._claim, engine, client_id, key, body.hash)
            except DATABASE_UNAVAILABLE_ERRORS:
                logger.exception("idempotency key store unavailable")
                await _database_unavailable(scope, send)
                return
            if claim.outcome is ClaimOutcome.claimed:
                assert claim.row_id is not None
                await self._run(scope, body.replay(receive), send, engine, claim.row_id)
            elif claim.outcome is ClaimOutcome.client_inactive:
                await self.app(scope, body.replay(receive), send)  # the route answers 401
            else:
                await _refuse_or_replay(scope, send, claim)
        finally:
            body.close()

    def _claim(self, engine: Engine, client_id: str, key: str, request_hash: str) -> Claim:
        now = utcnow()
        prune = time.monotonic() - self._pruned_at > PRUNE_INTERVAL_SECONDS
        for _attempt in range(2):
            try:
                with transaction(engine) as session:
                    if prune:
                        prune_expired_keys(session, now=now)
                    claim = claim_key(
                        session, client_id=client_id, key=key, request_hash=request_hash, now=now
                    )
            except IntegrityError:
                continue  # a concurrent request inserted it first: read what it holds
            if prune:
                self._pruned_at = time.monotonic()
            return claim
        return Claim(ClaimOutcome.in_progress)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, engine: Engine, row_id: int
    ) -> None:
        held = _HeldAnswer(send)
        try:
            await self.app(scope, receive, held)
        except BaseException:
            await _in_thread(engine, lambda session: release_key(session, row_id=row_id))
            raise
        if not (held.complete or held.streaming) or not _storable(held.status):
            await _in_thread(engine, lambda session: release_key(session, row_id=row_id))
            return
        answer = None if held.too_large else held.answer()
        try:
            await _in_thread(
                engine,
                lambda session: complete_key(
                    session, row_id=row_id, answer=answer, status=held.status, now=utcnow()
                ),
            )
        except DATABASE_UNAVAILABLE_ERRORS:
            # The route's work is committed, so its answer goes out; the claim stays in flight
            # until its lease ends, and until then a retry is told to wait.
            logger.exception("idempotency key not completed", extra={"path": scope["path"]})
        if not held.streaming:
            await held.flush()


async def _in_thread(engine: Engine, work: Callable[[Session], None]) -> None:
    """One short transaction in a worker thread, finished even if the request is cancelled, so
    no claim is left in flight by a client that went away."""

    def run() -> None:
        with transaction(engine) as session:
            work(session)

    with anyio.CancelScope(shield=True):
        await run_in_threadpool(run)


async def _refuse_or_replay(scope: Scope, send: Send, claim: Claim) -> None:
    path = scope["path"]
    if claim.outcome is ClaimOutcome.replay:
        assert claim.answer is not None
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in claim.answer.headers
        ]
        await send(
            {
                "type": "http.response.start",
                "status": claim.answer.status,
                "headers": [*headers, REPLAYED_HEADER],
            }
        )
        await send({"type": "http.response.body", "body": claim.answer.body})
    elif claim.outcome is ClaimOutcome.mismatch:
        await send_problem(
            send,
            422,
            "idempotency-key-reused",
            "This Idempotency-Key was used for another request",
            "The key was first used with another method, path or body; use a new key for a new request.",
            path,
        )
    elif claim.outcome is ClaimOutcome.in_progress:
        await send_problem(
            send,
            409,
            "idempotency-key-in-use",
            "A request with this Idempotency-Key is still being processed",
            "Retry after the first request has finished to get its answer.",
            path,
            headers=[(b"retry-after", b"1")],
        )
    else:
        await send_problem(
            send,
            409,
            "idempotency-answer-not-kept",
            "The request with this Idempotency-Key was processed; its answer was too large to keep",
            f"Answers over {MAX_STORED_ANSWER_BYTES} bytes are not replayed; read the result with a GET.",
            path,
        )


async def _database_unavailable(scope: Scope, send: Send) -> None:
    await send_problem(
        send,
        503,
        "database-unavailable",
        "Service Unavailable",
        "The database cannot be reached just now; retry after a few seconds.",
        scope["path"],
        headers=[(b"retry-after", str(DATABASE_RETRY_AFTER_SECONDS).encode())],
    )

"""Streamed answers (CSV exports) that release what their generator holds however they end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class ClosingStreamingResponse(StreamingResponse):
    """Closes its source generator when the answer ends, finished or not. Starlette leaves it
    open when the client hangs up mid-stream, and an export generator holds a database session:
    its connection would stay checked out until the garbage collector happened to find it."""

    def __init__(
        self, content: Iterator[str], *, source: Iterator[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(content, **kwargs)
        self._source = content if source is None else source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                # A generator's cleanup (the session's rollback) may wait on the database.
                await run_in_threadpool(close)

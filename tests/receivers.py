"""A real webhook receiver for tests: uvicorn on 127.0.0.1 (a free port), in a thread, recording
every request and answering as the test scripts it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.types import Receive, Scope, Send


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Script = Callable[[Received, int], Reply]


def always(reply: Reply) -> Script:
    return lambda _request, _count: reply


def in_turn(*replies: Reply) -> Script:
    """The n-th request gets the n-th reply; later ones get the last."""
    return lambda _request, count: replies[min(count, len(replies) - 1)]


class Receiver:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            log_level="error",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [request.body for request in self.requests]

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = Received(
            path=scope["path"],
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=body,
        )
        with self._lock:
            count = len(self.requests)
            self.requests.append(request)
        reply = self.script(request, count)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers = [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test receiver did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@contextmanager
def running_receiver(script: Script | None = None) -> Iterator[Receiver]:
    receiver = Receiver(script or always(Reply()))
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()

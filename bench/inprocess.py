"""CPU per request of our own code: the app called in-process on the reference dataset, with no
server, socket or client sharing the cores. Where a live ratio moves between runs, this says
whether our code's cost did (the machines drift; this figure moves far less). On PostgreSQL it
counts the worker's CPU only, not the server's.

Reads: the compliance summary (cycling through 200 factories), the 50-factory page through a
token naming its chain, and the same page through a token naming none. Blocks of requests made
16 at a time (as `bench.http`'s `wrk -c16`: on PostgreSQL awaited reads overlap), the lower
quartile and the median of their CPU per request.

    python -m bench.inprocess [sqlite|postgresql ...]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvloop
from fastapi import FastAPI

from bench import dataset
from src.config import Settings
from src.main import create_app

BLOCKS = 20
CONCURRENT = 16
PER_TASK = 20
WARM_UP = 200

Call = Callable[[], Awaitable[None]]


def _settings(url: str) -> Settings:
    return Settings(database_url=url, rate_limit_per_minute=100_000_000, log_level="WARNING")


def _requester(app: FastAPI, token: str) -> Callable[[str, bytes], Call]:
    """A call of the app for one path and query, as uvicorn would make it; checks it answers 200."""
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"answered {message['status']}")

    def request(path: str, query: bytes) -> Call:
        async def call() -> None:
            scope = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                "query_string": query, "root_path": "", "headers": headers,
                "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
            }  # fmt: skip
            await app(scope, receive, send)  # type: ignore[arg-type]

        return call

    return request


async def _cpu_per_request(calls: list[Call]) -> tuple[float, float]:
    """The lower quartile and the median, over blocks, of the CPU µs a request."""
    for number in range(WARM_UP):
        await calls[number % len(calls)]()

    async def task(first: int) -> None:
        for number in range(first, first + PER_TASK):
            await calls[number % len(calls)]()

    blocks = []
    for _ in range(BLOCKS):
        started = time.process_time()
        await asyncio.gather(*(task(index * PER_TASK) for index in range(CONCURRENT)))
        blocks.append((time.process_time() - started) / (CONCURRENT * PER_TASK) * 1e6)
    return statistics.quantiles(blocks, n=4)[0], statistics.median(blocks)


async def _run(database: str) -> list[tuple[str, str]]:
    url = dataset.sqlite_url() if database == "sqlite" else dataset.postgres_url()
    clients = dataset.load_clients(dataset.ensure(url))
    admin = next(c for c in clients if c["org_kind"] == "programme")
    buyer = next(c for c in clients if c["org_kind"] == "buyer")
    app = create_app(_settings(url))
    figures = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:

            async def token(client: dict[str, Any]) -> str:
                response = await http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(client["client_id"], client["client_secret"]),
                )
                response.raise_for_status()
                return str(response.json()["access_token"])

            named = await token(buyer)
            admin_headers = {"Authorization": f"Bearer {await token(admin)}"}
            created = await http.post(
                "/v1/clients",
                json={"org_id": buyer["org_id"], "name": "bench: every chain"},
                headers=admin_headers,
            )
            created.raise_for_status()
            every_chain = created.json()
            try:
                page = await http.get(
                    "/v1/factories?limit=200", headers={"Authorization": f"Bearer {named}"}
                )
                factory_ids = [item["id"] for item in page.json()["data"]]
                reads = {
                    "compliance summary": (
                        named,
                        [(f"/v1/factories/{fid}/compliance-summary", b"") for fid in factory_ids],
                    ),
                    "factory page (50)": (named, [("/v1/factories", b"limit=50")]),
                    "factory page (50), token naming no chain": (
                        await token(every_chain),
                        [("/v1/factories", b"limit=50")],
                    ),
                }
                for name, (read_token, paths) in reads.items():
                    request = _requester(app, read_token)
                    quartile, median = await _cpu_per_request([request(*p) for p in paths])
                    figures.append(
                        (f"{database}: {name}", f"{quartile:.0f} µs (median {median:.0f} µs)")
                    )
            finally:
                revoked = await http.delete(
                    f"/v1/clients/{every_chain['client_id']}", headers=admin_headers
                )
                revoked.raise_for_status()
    return figures


def main(databases: list[str]) -> None:
    os.environ.setdefault("WEFT_LOG_LEVEL", "WARNING")
    for database in databases:
        for name, figure in uvloop.run(_run(database)):
            print(f"{name:<55} {figure} of CPU a request, in-process", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["sqlite", "postgresql"])

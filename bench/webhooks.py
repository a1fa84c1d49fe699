"""Webhook delivery benchmark: one event fanned out to 1,000 endpoints, then sustained delivery
with one worker, against a receiver in its own process on 127.0.0.1.

    .venv/bin/python -m bench.webhooks                      # SQLite (a fresh file)
    .venv/bin/python -m bench.webhooks --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

With --postgres a scratch database is created on that server and dropped afterwards."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
import uvloop
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, text
from sqlmodel import Session, col, select
from starlette.types import Receive, Scope, Send

from bench.dataset import scratch_database
from bench.load import free_port
from src.config import PROJECT_ROOT, Settings
from src.db import make_engine, transaction, utcnow
from src.models import Delivery, Organization, WebhookEndpoint
from src.models.organizations import OrgKind
from src.services.delivery import fan_out
from src.services.events import EventType, emit
from src.services.webhooks import new_secret
from src.worker import Worker, run_once


def report(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _receiver_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _serve(port: int) -> None:
    uvicorn.run(_receiver_app, host="127.0.0.1", port=port, log_level="error", lifespan="off")


@contextmanager
def receiver() -> Iterator[str]:
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,))
    process.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start") from None
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join()


def migrate(url: str) -> None:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


def add_endpoints(engine: Engine, base_url: str, count: int) -> str:
    with transaction(engine) as session:
        org = Organization(name="Bench buyer", kind=OrgKind.buyer)
        session.add(org)
        session.flush()
        session.add_all(
            WebhookEndpoint(org_id=org.id, url=f"{base_url}/hook/{n}", secret=new_secret())
            for n in range(count)
        )
        return org.id


def emit_events(engine: Engine, org_id: str, count: int) -> None:
    with transaction(engine) as session:
        for n in range(count):
            emit(session, EventType.scorecard_published, {"n": n}, org_id=org_id)


def succeeded(engine: Engine) -> int:
    with Session(engine) as session:
        statement = select(func.count()).where(col(Delivery.status) == "succeeded")
        return int(session.exec(statement).one())


def reset(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in ("delivery_attempts", "deliveries", "events", "webhook_endpoints"):
            connection.execute(text(f"DELETE FROM {table}"))


def fan_out_to_thousand(engine: Engine, settings: Settings, base_url: str, endpoints: int) -> None:
    org_id = add_endpoints(engine, base_url, endpoints)
    emit_events(engine, org_id, 1)
    started = time.perf_counter()
    with transaction(engine) as session:
        fan_out(session, now=utcnow())
    fanned = time.perf_counter() - started
    uvloop.run(run_once(engine, settings))
    total = time.perf_counter() - started
    assert succeeded(engine) == endpoints
    report(
        f"  one event to {endpoints} endpoints: fan-out {fanned * 1000:.0f} ms, all delivered "
        f"in {total:.2f} s ({endpoints / total:.0f} deliveries/s)"
    )


async def _sustained(engine: Engine, settings: Settings, expected: int) -> float:
    stop = asyncio.Event()
    async with Worker(engine, settings) as worker:
        started = time.perf_counter()
        task = asyncio.create_task(worker.run(stop))
        while await asyncio.to_thread(succeeded, engine) < expected:
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
    return elapsed


def sustained(
    engine: Engine, settings: Settings, base_url: str, endpoints: int, events: int
) -> None:
    org_id = add_endpoints(engine, base_url, endpoints)
    emit_events(engine, org_id, events)
    expected = endpoints * events
    elapsed = uvloop.run(_sustained(engine, settings, expected))
    report(
        f"  sustained, one worker (concurrency {settings.webhook_concurrency}): {expected} "
        f"deliveries in {elapsed:.2f} s = {expected / elapsed:.0f} deliveries/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", help="PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--sustained-endpoints", type=int, default=50)
    parser.add_argument("--sustained-events", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with scratch_database(args.postgres) as url, receiver() as base_url:
        migrate(url)
        engine = make_engine(url)
        settings = Settings(
            database_url=url,
            webhook_allow_insecure=True,
            webhook_allow_networks=["127.0.0.0/8"],  # type: ignore[list-item]
            webhook_concurrency=args.concurrency,
            log_level="WARNING",
        )
        report(f"{engine.dialect.name}:")
        fan_out_to_thousand(engine, settings, base_url, args.endpoints)
        reset(engine)
        sustained(engine, settings, base_url, args.sustained_endpoints, args.sustained_events)
        engine.dispose()


if __name__ == "__main__":
    main()

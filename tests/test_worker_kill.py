"""`weft worker` processes on PostgreSQL: one killed mid-batch loses nothing (its leases expire
and another worker sends those messages), and SIGTERM lets the sends in flight finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from src.config import PROJECT_ROOT, Settings
from src.db import transaction
from src.models import Delivery, WebhookEndpoint
from src.services.events import EventType, emit
from src.services.webhooks import new_secret
from tests.builders import make_buyer
from tests.receivers import Receiver, Reply, always, running_receiver

MESSAGES = 24
CONCURRENCY = 6


@pytest.fixture(autouse=True)
def _postgresql_only(settings: Settings) -> None:
    if settings.is_sqlite:
        pytest.skip(
            "needs PostgreSQL: several workers share deliveries through FOR UPDATE SKIP LOCKED "
            "leases, and SQLite is run with a single worker"
        )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def worker_process(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    env = os.environ | {
        "WEFT_DATABASE_URL": settings.database_url,
        "WEFT_WEBHOOK_LEASE_SECONDS": "5",
        "WEFT_WEBHOOK_CONCURRENCY": str(CONCURRENCY),
        "WEFT_WEBHOOK_ALLOW_INSECURE": "true",
        "WEFT_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
        "WEFT_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "src.cli", "worker"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def owe_messages(engine: Engine, receiver: Receiver) -> None:
    """One event owed to MESSAGES endpoints of one organisation, all on the slow receiver."""
    with transaction(engine) as session:
        buyer = make_buyer(session)
        for n in range(MESSAGES):
            session.add(
                WebhookEndpoint(
                    org_id=buyer.id, url=receiver.url(f"/hook/{n}"), secret=new_secret()
                )
            )
        emit(session, EventType.scorecard_published, {"period": "2026H1"}, org_id=buyer.id)


def count(engine: Engine, *conditions: object) -> int:
    with Session(engine) as session:
        return int(
            session.exec(select(func.count()).select_from(Delivery).where(*conditions)).one()
        )  # type: ignore[arg-type]


def delivery_ids(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return set(session.exec(select(Delivery.id)).all())


def test_a_killed_worker_loses_no_message(engine: Engine, settings: Settings) -> None:
    with running_receiver(always(Reply(200, delay=0.4))) as receiver:
        owe_messages(engine, receiver)
        with worker_process(settings) as first:
            wait_for(lambda: len(receiver.requests) >= CONCURRENCY, 30, "the first sends")
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        leased = count(
            engine,
            col(Delivery.status) == "pending",
            col(Delivery.lease_expires_at).is_not(None),
        )
        assert leased > 0, "the worker was killed with nothing in flight"

        with worker_process(settings) as second:
            wait_for(
                lambda: count(engine, col(Delivery.status) == "succeeded") == MESSAGES,
                60,
                "every message to be delivered",
            )
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0

    received = [request.headers["webhook-id"] for request in receiver.requests]
    assert set(received) == delivery_ids(engine)
    assert len(delivery_ids(engine)) == MESSAGES
    assert len(received) >= MESSAGES


def test_sigterm_lets_the_sends_in_flight_finish(engine: Engine, settings: Settings) -> None:
    with running_receiver(always(Reply(200, delay=1.0))) as receiver:
        owe_messages(engine, receiver)
        with worker_process(settings) as worker:
            wait_for(lambda: len(receiver.requests) >= CONCURRENCY, 30, "the first sends")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0
    sent = {request.headers["webhook-id"] for request in receiver.requests}
    assert count(engine, col(Delivery.status) == "succeeded") == len(sent)
    assert count(engine, col(Delivery.lease_expires_at).is_not(None)) == 0

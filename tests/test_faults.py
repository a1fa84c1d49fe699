"""Faults, with real processes on loopback: the database unreachable or out of connections (503,
never 500), PostgreSQL stopped and started again under load (the service recovers by itself and
loses no acknowledged write), a client that hangs up during a CSV export (its connection goes back
to the pool), a webhook receiver answering an absurd Retry-After, and a 1 GB request body (refused
early, the server's memory flat). A worker killed mid-delivery and a receiver that hangs are in
tests/test_worker_kill.py and tests/services/test_delivery.py."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from select import select as wait_readable

import httpx
import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, insert, make_url
from sqlmodel import Session, col, select

from src.config import PROJECT_ROOT, Settings
from src.db import make_engine, transaction, utcnow
from src.main import create_app
from src.models import Delivery, DeliveryAttempt, Factory, WebhookEndpoint
from src.models.factories import encode_item
from src.services.clients import NewClient
from src.services.events import EventType, emit
from src.services.webhook_sending import MAX_RETRY_AFTER
from src.services.webhooks import new_secret
from src.worker import run_once
from tests.builders import bearer, make_buyer, make_programme_client
from tests.receivers import Reply, always, running_receiver
from tests.servers import free_port, serving

PROBLEM = "application/problem+json"
DATABASE_UNAVAILABLE = {
    "type": "https://weft.dev/problems/database-unavailable",
    "title": "Service Unavailable",
    "status": 503,
    "detail": "The database cannot be reached just now; retry after a few seconds.",
}
NO_RATE_LIMITS = {"rate_limit_per_minute": 10**9, "token_rate_limit_per_minute": 10**9}


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def assert_database_unavailable(response: httpx.Response, path: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "5"
    assert response.json() == DATABASE_UNAVAILABLE | {"instance": path}


@pytest.fixture
def admin(session: Session) -> NewClient:
    credentials = make_programme_client(session)
    session.commit()
    return credentials


SUMMARY = "/v1/factories/fac_01KEEPS0000000000000000000/compliance-summary"


class TestDatabaseUnavailable:
    """Through the app in process; the outage is real: a PostgreSQL port nobody listens on."""

    @pytest.fixture
    def unreachable(self, settings: Settings) -> Iterator[TestClient]:
        url = f"postgresql+psycopg://weft@127.0.0.1:{free_port()}/weft"
        engine = make_engine(url)
        app = create_app(settings.model_copy(update={"database_url": url}), engine=engine)
        with TestClient(app, raise_server_exceptions=False) as http:
            yield http
        engine.dispose()

    def test_every_kind_of_request_answers_503_problem(
        self, unreachable: TestClient, client: TestClient, admin: NewClient
    ) -> None:
        token = bearer(client, admin)  # issued while the database was there
        answers = {
            "/.well-known/jwks.json": unreachable.get("/.well-known/jwks.json"),
            "/oauth/token": unreachable.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(admin.client.id, admin.secret),
            ),
            "/v1/factories": unreachable.get("/v1/factories", headers=token),
            SUMMARY: unreachable.get(SUMMARY, headers=token),
            "/v1/me": unreachable.get("/v1/me", headers=token),
        }
        for path, response in answers.items():
            assert_database_unavailable(response, path)

    def test_readiness_says_not_ready(self, unreachable: TestClient) -> None:
        response = unreachable.get("/readyz")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["type"] == "https://weft.dev/problems/not-ready"

    def test_the_error_is_logged_once_without_reaching_the_caller(
        self, unreachable: TestClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="weft.http"):
            response = unreachable.get("/.well-known/jwks.json")
        logged = [r for r in caplog.records if r.getMessage() == "database unavailable"]
        assert len(logged) == 1
        assert logged[0].levelno == logging.ERROR
        assert logged[0].error.startswith("OperationalError: connection failed")  # type: ignore[attr-defined]
        assert logged[0].exc_info is None
        assert not [r for r in caplog.records if r.getMessage() == "unhandled error"]
        assert "connection failed" not in response.text
        assert "Traceback" not in response.text

    def test_a_pool_with_no_connection_to_spare_answers_503(
        self, settings: Settings, client: TestClient, admin: NewClient
    ) -> None:
        engine = create_engine(settings.database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
        app = create_app(settings, engine=engine)
        token = bearer(client, admin)
        try:
            with engine.connect(), TestClient(app, raise_server_exceptions=False) as http:
                assert_database_unavailable(http.get("/v1/me", headers=token), "/v1/me")
            with TestClient(app) as http:  # the connection is back: so is the service
                assert http.get("/v1/me", headers=token).status_code == 200
        finally:
            engine.dispose()


# PostgreSQL stopped and started under load ------------------------------------------------------


def pg_ctl(action: str) -> None:
    versions = sorted(os.listdir("/etc/postgresql"))
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", action, "-m", "fast"]
        if action == "stop"
        else ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


def accepts_connections(url: str) -> bool:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        psycopg.connect(conninfo, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


@contextmanager
def postgresql_down(url: str) -> Iterator[None]:
    """Stops the cluster; whatever happens, starts it again and waits until it takes
    connections, since the rest of the suite runs on it."""
    try:
        pg_ctl("stop")
        yield
    finally:
        if not accepts_connections(url):
            pg_ctl("start")
        wait_for(lambda: accepts_connections(url), timeout=60, what="PostgreSQL to start")


@dataclass
class Load:
    """A steady stream of factory creations and reads, each answer kept."""

    base_url: str
    token: dict[str, str]
    writes: list[tuple[str, int, httpx.Response]] = field(default_factory=list)
    reads: list[httpx.Response] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, headers=self.token, timeout=10) as http:
            n = 0
            while not self.stop.is_set():
                n += 1
                code = f"FAULT-{n:05d}"
                body = {"programme_code": code, "name": f"Fault {n}", "country": "KH"}
                written = http.post("/v1/factories", json=body)
                read = http.get("/v1/factories", params={"limit": 5})
                with self.lock:
                    self.writes.append((code, n, written))
                    self.reads.append(read)
                time.sleep(0.01)

    def count(self, test: Callable[[httpx.Response], bool]) -> int:
        with self.lock:
            return sum(test(w) for _, _, w in self.writes) + sum(test(r) for r in self.reads)

    def answers(self) -> list[httpx.Response]:
        with self.lock:
            return [w for _, _, w in self.writes] + list(self.reads)


@pytest.mark.skipif(
    not os.environ.get("WEFT_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="stops and starts the PostgreSQL server: needs WEFT_TEST_DATABASE_URL on PostgreSQL",
)
def test_postgresql_restart_under_load_loses_no_acknowledged_write(
    settings: Settings, engine: Engine, admin: NewClient, client: TestClient
) -> None:
    server_engine = make_engine(settings.database_url)
    app = create_app(settings.model_copy(update=NO_RATE_LIMITS), engine=server_engine)
    token = bearer(client, admin)
    try:
        with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as probe:
            load = Load(base_url, token)
            loader = threading.Thread(target=load.run, daemon=True)
            loader.start()
            try:
                is_created = lambda r: r.status_code == 201  # noqa: E731
                wait_for(lambda: load.count(is_created) >= 10, timeout=20, what="writes")
                with postgresql_down(settings.database_url):
                    is_503 = lambda r: r.status_code == 503  # noqa: E731
                    wait_for(lambda: load.count(is_503) >= 10, timeout=20, what="503 answers")
                    down = probe.get("/readyz")
                    assert down.status_code == 503
                    assert down.headers["content-type"] == PROBLEM
                    outage = load.count(is_503)
                created_before = load.count(is_created)
                wait_for(lambda: probe.get("/readyz").status_code == 200, timeout=30, what="ready")
                wait_for(
                    lambda: load.count(is_created) >= created_before + 10,
                    timeout=30,
                    what="writes to succeed again",
                )
            finally:
                load.stop.set()
                loader.join(timeout=30)
    finally:
        server_engine.dispose()

    answers = load.answers()
    assert outage >= 10
    assert {r.status_code for r in answers} <= {200, 201, 503}, "no 500, no other error"
    for response in answers:
        if response.status_code == 503:
            assert_database_unavailable(response, response.request.url.path)
    acknowledged = {code for code, _, response in load.writes if response.status_code == 201}
    with Session(engine) as session:
        stored = set(
            session.exec(
                select(col(Factory.programme_code)).where(
                    col(Factory.programme_code).in_(acknowledged)
                )
            ).all()
        )
    assert stored == acknowledged


# A client that hangs up during a CSV export -----------------------------------------------------

# Rows near the columns' length limits, 7 MB in all: more than every buffer between the export and
# a client that reads nothing (the server's socket buffer grows to 4 MiB on loopback).
EXPORT_FACTORIES = 8000


def bulk_factories(engine: Engine, count: int) -> None:
    now = utcnow()
    rows = [
        {
            "id": f"fac_bulk{n:06d}",
            "programme_code": f"BULK-{n:06d}",
            "name": f"Bulk factory {n} " + "Garments and Textiles " * 12,
            "country": "VN",
            "address": f"Lot {n}, " + "Tan Uyen industrial park, Binh Duong province, " * 10,
            "os_id": None,
            "sector": "garment",
            "workers_total": 900,
            "workers_women": 600,
            "status": "active",
            "enrolled_on": None,
            "created_at": now,
            "updated_at": now,
            "risk_band": None,
        }
        for n in range(count)
    ]
    for row in rows:
        row["item_json"] = encode_item(row)
    with engine.begin() as connection:
        connection.execute(insert(Factory), rows)


def test_a_client_hanging_up_mid_export_releases_the_connection(
    settings: Settings, engine: Engine, admin: NewClient, client: TestClient
) -> None:
    bulk_factories(engine, EXPORT_FACTORIES)
    server_engine = make_engine(settings.database_url)
    app = create_app(settings, engine=server_engine)
    token = bearer(client, admin) | {"Accept": "text/csv"}
    pool = server_engine.pool
    try:
        with serving(app) as base_url:
            port = int(base_url.rsplit(":", 1)[1])
            before = pool.checkedout()  # type: ignore[attr-defined]

            def released() -> bool:
                return bool(pool.checkedout() == before)  # type: ignore[attr-defined]

            with socket.socket() as sock:
                # A small window (set before connecting, when it is negotiated) and no reading:
                # the server's sends block mid-export.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.settimeout(10)
                sock.connect(("127.0.0.1", port))
                request = (
                    f"GET /v1/factories HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: {token['Authorization']}\r\nAccept: text/csv\r\n\r\n"
                )
                sock.sendall(request.encode())
                first = sock.recv(4096)
                assert first.startswith(b"HTTP/1.1 200"), first
                wait_for(
                    lambda: pool.checkedout() > before,  # type: ignore[attr-defined]
                    timeout=10,
                    what="the export to hold a connection",
                )
                time.sleep(0.3)
                assert pool.checkedout() > before, "the export finished before the hang-up"  # type: ignore[attr-defined]
            wait_for(released, timeout=10, what="the export's connection to go back to the pool")
            with httpx.Client(base_url=base_url, headers=token, timeout=30) as http:
                assert http.get("/healthz").json() == {"status": "ok"}
                full = http.get("/v1/factories")
            assert full.status_code == 200
            assert full.text.count("\n") == EXPORT_FACTORIES + 1  # the header line too
            wait_for(released, timeout=10, what="the full export's connection to go back")
    finally:
        server_engine.dispose()


# A receiver that answers with an absurd Retry-After ---------------------------------------------


def test_a_receivers_huge_retry_after_is_recorded_and_capped(
    engine: Engine, settings: Settings
) -> None:
    with transaction(engine) as session:
        buyer = make_buyer(session)
    reply = Reply(503, headers={"retry-after": "9" * 20})
    with running_receiver(always(reply)) as receiver:
        with transaction(engine) as session:
            session.add(WebhookEndpoint(org_id=buyer.id, url=receiver.url(), secret=new_secret()))
            emit(session, EventType.scorecard_published, {}, org_id=buyer.id)
        asyncio.run(run_once(engine, settings))
    with Session(engine) as session:
        [delivery] = session.exec(select(Delivery)).all()
        [attempt] = session.exec(select(DeliveryAttempt)).all()
    assert attempt.response_code == 503
    assert delivery.status == "pending"
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at - delivery.updated_at == MAX_RETRY_AFTER


# A 1 GB request body ----------------------------------------------------------------------------

GIB = 1024**3
MIB = 1024**2


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024


@contextmanager
def server_process(settings: Settings) -> Iterator[ServerProcess]:
    """`uvicorn src.main:create_app` in its own process, so its memory is its own."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    env = os.environ | {"WEFT_DATABASE_URL": settings.database_url, "WEFT_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "uvicorn", "src.main:create_app", "--factory"]
    process = subprocess.Popen(
        [*command, "--fd", str(listener.fileno()), "--log-level", "warning"],
        cwd=PROJECT_ROOT,
        env=env,
        pass_fds=[listener.fileno()],
        stdout=subprocess.DEVNULL,
    )
    listener.close()
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout=30, what="the server process to start")
        yield ServerProcess(process, base_url)
    finally:
        process.terminate()
        process.wait(timeout=10)


def gigabyte() -> Iterator[bytes]:
    """1 GiB of JSON-looking bytes, made as it is sent."""
    chunk = b"[" + b"0," * (MIB // 2 - 1) + b"0"
    for _ in range(GIB // len(chunk)):
        yield chunk


@dataclass
class Refusal:
    head: bytes
    body: bytes
    sent: int


def post_until_answered(base_url: str, headers: dict[str, str], body: Iterator[bytes]) -> Refusal:
    """POSTs the body, watching for an answer before each chunk, as a client that reads while it
    sends would (httpx sends the whole body before it reads a byte). Stops at the first answer."""
    host, port = base_url.removeprefix("http://").split(":")
    chunked = "Content-Length" not in headers
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /v1/factories HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
        for chunk in body:
            if wait_readable([sock], [], [], 0.05 if sent == 0 else 0)[0]:
                break
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            sent += len(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        status_and_headers, _, rest = answer.partition(b"\r\n\r\n")
        length = int(status_and_headers.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += sock.recv(65536)
    return Refusal(status_and_headers, rest, sent)


def test_a_1_gb_body_is_refused_early_and_memory_stays_flat(settings: Settings) -> None:
    with server_process(settings) as server:
        httpx.post(f"{server.base_url}/v1/factories", json={})  # loads what later ones use
        rss_before = server.rss_bytes()
        streamed = post_until_answered(
            server.base_url, {"Content-Type": "application/json"}, gigabyte()
        )
        declared = post_until_answered(
            server.base_url,
            {"Content-Type": "application/json", "Content-Length": str(GIB)},
            gigabyte(),
        )
        for refusal in (streamed, declared):
            assert refusal.head.startswith(b"HTTP/1.1 413 "), refusal.head
            assert b"content-type: application/problem+json" in refusal.head
            assert orjson.loads(refusal.body)["type"] == (
                "https://weft.dev/problems/payload-too-large"
            )
        limit = settings.max_body_bytes
        assert limit < streamed.sent < limit + 32 * MIB, "answered soon after the limit"
        assert declared.sent == 0, "answered on the headers alone"
        assert httpx.get(f"{server.base_url}/healthz").status_code == 200
        growth = server.rss_bytes() - rss_before
        assert growth < 50 * MIB, f"the server grew by {growth / MIB:.1f} MiB"

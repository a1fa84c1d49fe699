"""Soak: mixed reads, writes and webhook deliveries for a long stretch against one uvicorn worker
and a `weft worker` delivering to a receiver on 127.0.0.1, on the `weft seed demo` dataset.
Passes when no request fails, no delivery fails, and the server's memory grows by less than 10 %
after the warm-up.

    make soak                                       # 10 minutes on PostgreSQL (127.0.0.1:5432)
    .venv/bin/python -m bench.soak --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python -m bench.soak --minutes 1      # on SQLite

With --postgres a scratch database is created on that server and dropped afterwards. On SQLite
the server's memory keeps growing for a while as the database grows: each pooled connection fills
its own page cache (up to 2 MiB), outside the Python heap, which stays flat."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import Session, col, select

from bench.dataset import scratch_database
from bench.load import uvicorn_server
from bench.webhooks import receiver
from src.config import PROJECT_ROOT
from src.db import make_engine
from src.models import Delivery

TOKEN_RENEWAL_SECONDS = 300  # well inside a token's 15-minute life
# The first tenth of the run (at most a minute) fills the pools and caches; the memory check
# starts from there, so it measures growth under steady load, not start-up.
MAX_WARM_UP_SECONDS = 60
MAX_MEMORY_GROWTH = 0.10


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def weft(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "src.cli", *args],
        cwd=PROJECT_ROOT,
        env=os.environ | env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


@contextmanager
def worker_process(env: dict[str, str]) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "src.cli", "worker"],
        cwd=PROJECT_ROOT,
        env=os.environ | env,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


class Caller:
    """One demo client's HTTP session, its token renewed before it can expire."""

    def __init__(self, base: str, credentials: dict[str, Any]) -> None:
        self.credentials = credentials
        self.http = httpx.Client(base_url=base, timeout=30)
        self.renewed_at = 0.0

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if time.monotonic() - self.renewed_at > TOKEN_RENEWAL_SECONDS:
            answer = self.http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(self.credentials["client_id"], self.credentials["client_secret"]),
            )
            answer.raise_for_status()
            self.http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
            self.renewed_at = time.monotonic()
        return self.http.request(method, path, **kwargs)


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, response: httpx.Response, seconds: float) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds)
            if response.status_code >= 400:
                self.errors[kind] += 1
                if len(self.error_samples) < 10:
                    self.error_samples.append(f"{kind}: {response.status_code} {response.text}")


@dataclass(frozen=True)
class Buyer:
    """A demo buyer client, with the factories and supply chains it sees."""

    credentials: dict[str, Any]
    factory_ids: list[str]
    chains: list[str]


@dataclass(frozen=True)
class Demo:
    admin: dict[str, Any]
    buyers: list[Buyer]


@dataclass(frozen=True)
class Step:
    who: str
    kind: str
    method: str
    path: Callable[[int], str]
    body: Callable[[int], dict[str, Any]] | None = None


def plan(buyer: Buyer) -> list[Step]:
    """The mix of a day, one step per request: mostly the buyer reading, the programme writing to
    the buyer's factories (each write an event that the worker delivers to the buyer)."""
    chain = buyer.chains[0]

    def factory(n: int) -> str:
        return buyer.factory_ids[n % len(buyer.factory_ids)]

    return [
        Step("buyer", "list factories", "GET", lambda _: "/v1/factories?limit=50"),
        Step("buyer", "get factory", "GET", lambda n: f"/v1/factories/{factory(n)}"),
        Step(
            "buyer",
            "compliance summary",
            "GET",
            lambda n: f"/v1/factories/{factory(n)}/compliance-summary",
        ),
        Step(
            "buyer",
            "supply-chain compliance",
            "GET",
            lambda _: f"/v1/supply-chains/{chain}/compliance",
        ),
        Step("buyer", "scorecards", "GET", lambda _: "/v1/scorecards"),
        Step("buyer", "events", "GET", lambda _: "/v1/events?limit=50"),
        Step("buyer", "me", "GET", lambda _: "/v1/me"),
        Step(
            "admin",
            "update factory",
            "PATCH",
            lambda n: f"/v1/factories/{factory(n)}",
            lambda n: {"workers_total": 5000 + n % 500, "workers_women": 2500},
        ),
        Step(
            "admin",
            "create factory",
            "POST",
            lambda _: "/v1/factories",
            lambda n: {
                "programme_code": f"SOAK-{os.getpid()}-{n:08d}",
                "name": f"Soak factory {n}",
                "country": "BD",
            },
        ),
    ]


def load_demo(base: str, clients_file: Path) -> Demo:
    clients = json.loads(clients_file.read_text())
    admin = next(c for c in clients if c["org_kind"] == "programme")
    buyers = []
    for credentials in clients:
        if credentials["org_kind"] != "buyer" or not credentials["supply_chains"]:
            continue
        visible = Caller(base, credentials).request("GET", "/v1/factories?limit=500")
        visible.raise_for_status()
        factory_ids = [item["id"] for item in visible.json()["data"]]
        if factory_ids:
            buyers.append(Buyer(credentials, factory_ids, list(credentials["supply_chains"])))
    if not buyers:
        raise SystemExit("the demo dataset has no buyer that sees a factory")
    return Demo(admin, buyers)


def subscribe(base: str, demo: Demo, receiver_url: str) -> None:
    """One endpoint per buyer, for every event type."""
    for buyer in demo.buyers:
        answer = Caller(base, buyer.credentials).request(
            "POST",
            "/v1/webhook-endpoints",
            json={"url": f"{receiver_url}/hook", "description": "soak"},
        )
        answer.raise_for_status()


def drive(
    base: str, demo: Demo, seconds: float, threads: int, tally: Tally, numbers: Iterator[int]
) -> None:
    """`threads` clients, each a buyer and the programme, taking the plan's steps in turn; the
    shared `numbers` make every write unique across the whole run."""
    deadline = time.monotonic() + seconds

    def run(offset: int) -> None:
        buyer = demo.buyers[offset % len(demo.buyers)]
        steps = plan(buyer)
        callers = {"admin": Caller(base, demo.admin), "buyer": Caller(base, buyer.credentials)}
        while time.monotonic() < deadline:
            n = next(numbers)
            step = steps[n % len(steps)]
            body = step.body(n) if step.body else None
            started = time.perf_counter()
            response = callers[step.who].request(step.method, step.path(n), json=body)
            tally.record(step.kind, response, time.perf_counter() - started)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def deliveries(url: str) -> Counter[str]:
    engine = make_engine(url)
    with Session(engine) as session:
        rows = session.exec(
            select(col(Delivery.status), func.count()).group_by(col(Delivery.status))
        ).all()
    engine.dispose()
    return Counter({str(status): int(count) for status, count in rows})


def wait_for_deliveries(url: str, seconds: float) -> Counter[str]:
    deadline = time.monotonic() + seconds
    counts = deliveries(url)
    while counts["pending"] and time.monotonic() < deadline:
        time.sleep(1)
        counts = deliveries(url)
    return counts


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def report(tally: Tally, elapsed: float, rss: tuple[int, int], counts: Counter[str]) -> bool:
    everything = [value for values in tally.latencies.values() for value in values]
    total = len(everything)
    errors = sum(tally.errors.values())
    print(f"{'request':<26}{'count':>9}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}")
    for kind, values in sorted(tally.latencies.items()):
        print(
            f"{kind:<26}{len(values):>9}{tally.errors[kind]:>8}"
            f"{statistics.median(values) * 1000:>9.1f}{percentile(values, 0.99):>9.1f}"
        )
    print(
        f"{'all':<26}{total:>9}{errors:>8}{statistics.median(everything) * 1000:>9.1f}"
        f"{percentile(everything, 0.99):>9.1f}   ({total / elapsed:.0f} req/s over {elapsed:.0f} s)"
    )
    for sample in tally.error_samples:
        print(f"  error: {sample[:300]}")
    start, end = rss
    growth = (end - start) / start
    print(
        f"server RSS: {start / 2**20:.1f} MiB after warm-up, {end / 2**20:.1f} MiB at the end "
        f"({growth:+.1%})"
    )
    failed = counts["failed"]
    print(
        "webhook deliveries: "
        + ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    )
    passed = errors == 0 and failed == 0 and counts["pending"] == 0
    passed = passed and growth < MAX_MEMORY_GROWTH and counts["succeeded"] > 0
    print("PASS" if passed else "FAIL")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8, help="concurrent clients")
    parser.add_argument("--postgres", help="PostgreSQL server URL (default: SQLite)")
    args = parser.parse_args()
    seconds = args.minutes * 60
    with (
        scratch_database(args.postgres) as url,
        tempfile.TemporaryDirectory() as directory,
        receiver() as receiver_url,
    ):
        clients_file = Path(directory) / "demo-clients.json"
        env = {
            "WEFT_DATABASE_URL": url,
            "WEFT_LOG_LEVEL": "WARNING",
            "WEFT_RATE_LIMIT_PER_MINUTE": "100000000",
            "WEFT_TOKEN_RATE_LIMIT_PER_MINUTE": "100000",
            "WEFT_WEBHOOK_ALLOW_INSECURE": "true",
            "WEFT_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
        }
        weft(env, "db", "upgrade")
        weft(env, "seed", "demo", "--clients-file", str(clients_file))
        with (
            uvicorn_server("src.main:create_app", env, factory=True) as server,
            worker_process(env),
        ):
            demo = load_demo(server.base, clients_file)
            subscribe(server.base, demo, receiver_url)
            print(
                f"soak: {args.minutes:g} min, {args.threads} clients as {len(demo.buyers)} buyers "
                f"(each with a webhook endpoint) and the programme, database {url.split(':')[0]}",
                flush=True,
            )
            warm_up = min(MAX_WARM_UP_SECONDS, seconds / 10)
            tally, numbers = Tally(), itertools.count()
            drive(server.base, demo, warm_up, args.threads, tally, numbers)
            rss_start = rss_bytes(server.pid)
            started = time.monotonic()
            drive(server.base, demo, seconds - warm_up, args.threads, tally, numbers)
            elapsed = time.monotonic() - started + warm_up
            rss_end = rss_bytes(server.pid)
            counts = wait_for_deliveries(url, 60)
        passed = report(tally, elapsed, (rss_start, rss_end), counts)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()

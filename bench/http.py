"""HTTP read paths against the ceiling of the stack, in one run, one uvicorn worker each:
the bare `async def` endpoint serving pre-encoded bytes, a compliance summary, a 50-factory page,
and the supply-chain aggregate; plus the CSV export of every factory with the server's peak memory.

    python -m bench.http [sqlite|postgresql ...]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import dataset
from bench.load import Server, uvicorn_server, wrk

SECONDS = 10


def _token(base: str, client: dict[str, object]) -> str:
    response = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(str(client["client_id"]), str(client["client_secret"])),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run(database: str) -> list[tuple[str, str]]:
    url = dataset.sqlite_url() if database == "sqlite" else dataset.postgres_url()
    clients = dataset.load_clients(dataset.ensure(url))
    admin = next(c for c in clients if c["org_kind"] == "programme")
    buyer = next(c for c in clients if c["org_kind"] == "buyer")
    env = {"WEFT_DATABASE_URL": url, "WEFT_RATE_LIMIT_PER_MINUTE": "100000000"}
    figures: list[tuple[str, str]] = []
    with uvicorn_server("src.main:create_app", env, factory=True) as server:
        base = server.base
        auth = {"Authorization": f"Bearer {_token(base, buyer)}"}
        chain = str(buyer["supply_chains"][0])  # type: ignore[index]
        page = httpx.get(f"{base}/v1/factories?limit=500", headers=auth, timeout=60).json()
        factory_ids = [item["id"] for item in page["data"]]
        summary_paths = [f"/v1/factories/{fid}/compliance-summary" for fid in factory_ids[:200]]
        body = httpx.get(base + summary_paths[0], headers=auth).content
        with tempfile.NamedTemporaryFile(suffix=".json") as body_file:
            body_file.write(body)
            body_file.flush()
            bare_env = {"WEFT_BENCH_BODY_FILE": body_file.name}
            with uvicorn_server("bench.bare_app:app", bare_env) as bare:
                # The ceiling is measured before and after the API's reads: a machine whose
                # speed drifts shows it as two different ceilings, and the ratios use their mean.
                bare_url = f"{bare.base}/bare"
                bare_before = wrk("bare async endpoint, before", bare_url, seconds=SECONDS)
                reads = [
                    wrk("compliance summary", base, headers=auth, paths=summary_paths,
                        seconds=SECONDS),
                    wrk("factory page (50)", f"{base}/v1/factories?limit=50", headers=auth,
                        seconds=SECONDS),
                ]  # fmt: skip
                bare_after = wrk("bare async endpoint, after", bare_url, seconds=SECONDS)
        aggregate_url = f"{base}/v1/supply-chains/{chain}/compliance"
        chain_size = httpx.get(aggregate_url, headers=auth, timeout=60).json()["factories"]
        aggregate = wrk(
            f"supply-chain aggregate ({chain_size} factories)",
            aggregate_url,
            headers=auth,
            seconds=SECONDS,
            connections=1,
        )
        ceiling = (bare_before.requests_per_second + bare_after.requests_per_second) / 2
        results = [bare_before, *reads, bare_after, aggregate]
        for result in results:
            figures.append((
                f"{database}: {result.name}",
                f"{result.requests_per_second:,.0f} req/s ({result.requests_per_second / ceiling:.0%}"
                f" of the mean bare), p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
                + (f", {result.errors} non-2xx" if result.errors else ""),
            ))  # fmt: skip
        figures.append(_csv_export(server, admin, database))
    return figures


def _csv_export(server: Server, admin: dict[str, object], database: str) -> tuple[str, str]:
    base = server.base
    headers = {"Authorization": f"Bearer {_token(base, admin)}", "Accept": "text/csv"}
    before = _peak_rss_kib(server.pid)
    started = time.perf_counter()
    rows = 0
    with httpx.stream("GET", f"{base}/v1/factories", headers=headers, timeout=300) as response:
        for line in response.iter_lines():
            rows += bool(line)
    elapsed = time.perf_counter() - started
    after = _peak_rss_kib(server.pid)
    return (
        f"{database}: CSV export of every factory",
        f"{rows - 1:,} rows in {elapsed:.1f} s; server peak RSS {before / 1024:.0f} → "
        f"{after / 1024:.0f} MiB",
    )


def main(databases: list[str]) -> None:
    for database in databases:
        for name, figure in run(database):
            print(f"{name:<55} {figure}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["sqlite", "postgresql"])

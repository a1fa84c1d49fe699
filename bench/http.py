"""HTTP read paths against the ceiling of the stack, in one run, one uvicorn worker each: a
compliance summary and a 50-factory page (through a token naming its chain, and one naming
none) in rounds between runs of the bare `async def` endpoint serving the same bytes as each
(the page is also set against the summary's ceiling, as before); the supply-chain aggregate;
the CSV export of every factory with the server's peak memory.

    python -m bench.http [sqlite|postgresql ...]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import httpx

from bench import dataset
from bench.load import LoadResult, Server, uvicorn_server, wrk

SECONDS = 10
# The reads alternate with the bare endpoint in short rounds, each read's ratio taken against
# the bare runs just before and after it: this machine class drifts by a third within minutes,
# and the median of the rounds moves less than one long run does.
ROUNDS = 3
ROUND_SECONDS = 5


def _token(base: str, client: dict[str, object]) -> str:
    response = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(str(client["client_id"]), str(client["client_secret"])),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


@contextmanager
def _client_reading_every_chain(base: str, admin_token: str, org_id: str) -> Iterator[str]:
    """A token of a new client of the buyer naming no chain (it reads them all, as most brands'
    clients do), revoked after the block."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    response = httpx.post(
        f"{base}/v1/clients",
        json={"org_id": org_id, "name": "bench: every chain", "scopes": ["factories:read"]},
        headers=admin,
    )
    response.raise_for_status()
    client = response.json()
    try:
        yield _token(base, client)
    finally:
        httpx.delete(f"{base}/v1/clients/{client['client_id']}", headers=admin).raise_for_status()


def _rounds(
    bare: dict[str, Callable[[str], LoadResult]], reads: dict[str, Callable[[str], LoadResult]]
) -> tuple[dict[str, list[float]], dict[str, list[LoadResult]]]:
    """bare, reads, bare, reads, ... bare: each read's ceilings between the rounds (the bare
    endpoint serving that read's bytes) and its results."""
    ceilings = {name: [serve("bare").requests_per_second] for name, serve in bare.items()}
    rounds: dict[str, list[LoadResult]] = {name: [] for name in reads}
    for _ in range(ROUNDS):
        for name, read in reads.items():
            rounds[name].append(read(name))
        for name, serve in bare.items():
            ceilings[name].append(serve("bare").requests_per_second)
    return ceilings, rounds


def _ratios(results: list[LoadResult], ceilings: list[float]) -> list[float]:
    return [
        result.requests_per_second / ((before + after) / 2)
        for result, before, after in zip(results, ceilings, ceilings[1:], strict=False)
    ]


def _ratio_figure(results: list[LoadResult], ratios: list[float], ceiling: str) -> str:
    middle = sorted(range(len(results)), key=lambda index: ratios[index])[len(results) // 2]
    return (
        f"{_figure(results[middle])}; median ratio {ratios[middle]:.0%} of the bare endpoint "
        f"serving {ceiling} (rounds: {', '.join(f'{ratio:.0%}' for ratio in ratios)})"
    )


def _figure(result: LoadResult) -> str:
    return (
        f"{result.requests_per_second:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms" + (f", {result.errors} non-2xx" if result.errors else "")
    )


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
        page_url = f"{base}/v1/factories?limit=50"
        with ExitStack() as stack:
            bodies = stack.enter_context(tempfile.TemporaryDirectory())
            every_chain = stack.enter_context(
                _client_reading_every_chain(base, _token(base, admin), str(buyer["org_id"]))
            )
            # Each read against the bare endpoint serving its own answer's bytes, as the ceiling.
            Path(bodies, "summary.json").write_bytes(
                httpx.get(base + summary_paths[0], headers=auth).content
            )
            Path(bodies, "page.json").write_bytes(httpx.get(page_url, headers=auth).content)
            with uvicorn_server("bench.bare_app:app", {"WEFT_BENCH_BODIES": bodies}) as bare:
                reads: dict[str, Callable[[str], LoadResult]] = {
                    "compliance summary": partial(
                        wrk, url=base, headers=auth, paths=summary_paths, seconds=ROUND_SECONDS
                    ),
                    "factory page (50)": partial(
                        wrk, url=page_url, headers=auth, seconds=ROUND_SECONDS
                    ),
                    # The same page, through a token naming no chain: the buyer's chain, seen
                    # within the minute, is walked by a statement checking it is still its one.
                    "factory page (50), token naming no chain": partial(
                        wrk,
                        url=page_url,
                        headers={"Authorization": f"Bearer {every_chain}"},
                        seconds=ROUND_SECONDS,
                    ),
                }
                ceilings, rounds = _rounds(
                    {
                        body: partial(wrk, url=f"{bare.base}/bare/{body}", seconds=ROUND_SECONDS)
                        for body in ("summary", "page")
                    },
                    reads,
                )
        for body, served in ceilings.items():
            figures.append((
                f"{database}: bare async endpoint serving the {body} (ceiling)",
                " / ".join(f"{ceiling:,.0f}" for ceiling in served) + " req/s, between the rounds",
            ))  # fmt: skip
        summaries = rounds["compliance summary"]
        figures.append((
            f"{database}: compliance summary",
            _ratio_figure(summaries, _ratios(summaries, ceilings["summary"]), "a summary"),
        ))  # fmt: skip
        pages = rounds["factory page (50)"]
        figures.append((
            f"{database}: factory page (50)",
            _ratio_figure(pages, _ratios(pages, ceilings["page"]), "the page"),
        ))  # fmt: skip
        figures.append((
            f"{database}: factory page (50), against the summary's ceiling",
            _ratio_figure(pages, _ratios(pages, ceilings["summary"]), "a summary"),
        ))  # fmt: skip
        every = rounds["factory page (50), token naming no chain"]
        figures.append((
            f"{database}: factory page (50), token naming no chain",
            _ratio_figure(every, _ratios(every, ceilings["page"]), "the page"),
        ))  # fmt: skip
        aggregate_url = f"{base}/v1/supply-chains/{chain}/compliance"
        chain_size = httpx.get(aggregate_url, headers=auth, timeout=60).json()["factories"]
        aggregate = wrk(
            f"supply-chain aggregate ({chain_size} factories)",
            aggregate_url,
            headers=auth,
            seconds=SECONDS,
            connections=1,
        )
        figures.append((f"{database}: {aggregate.name}", _figure(aggregate)))
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

"""Databases for the benchmarks. The reference dataset (10,000 factories × 5 cycles × ~100
findings), built once and cached: a SQLite file under var/bench/, and a `weft_bench` database on
the local PostgreSQL; and scratch databases that live for one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from src.config import PROJECT_ROOT
from src.db import temporary_database

BENCH_DIR = PROJECT_ROOT / "var" / "bench"
REFERENCE_FACTORIES = int(os.environ.get("WEFT_BENCH_FACTORIES", "10000"))
POSTGRES_SERVER = os.environ.get(
    "WEFT_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def sqlite_url() -> str:
    return f"sqlite:///{BENCH_DIR / f'reference-{REFERENCE_FACTORIES}.db'}"


def postgres_url() -> str:
    return (
        make_url(POSTGRES_SERVER)
        .set(database=f"weft_bench_{REFERENCE_FACTORIES}")
        .render_as_string(hide_password=False)
    )


def _factory_count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM factories")).scalar() or 0)
    except Exception:  # noqa: BLE001 (a missing database or table means "not built yet")
        return -1
    finally:
        engine.dispose()


def ensure(url: str) -> Path:
    """Builds the dataset at `url` unless it is there, and brings a dataset built before the newest
    migration up to it; answers its client credentials file."""
    clients = BENCH_DIR / f"clients-{make_url(url).get_backend_name()}-{REFERENCE_FACTORIES}.json"
    env = os.environ | {"WEFT_DATABASE_URL": url}
    weft = [sys.executable, "-m", "src.cli"]
    if _factory_count(url) == REFERENCE_FACTORIES and clients.exists():
        subprocess.run([*weft, "db", "upgrade"], env=env, check=True)
        return clients
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    if url.startswith("postgresql"):
        admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            name = make_url(url).database
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    else:
        Path(make_url(url).database or "").unlink(missing_ok=True)
    subprocess.run([*weft, "db", "upgrade"], env=env, check=True)
    print(f"building the reference dataset ({REFERENCE_FACTORIES} factories) at {url}", flush=True)
    subprocess.run(
        [*weft, "seed", "synthetic", "--factories", str(REFERENCE_FACTORIES),
         "--clients-file", str(clients)],
        env=env, check=True,
    )  # fmt: skip
    return clients


def load_clients(path: Path) -> list[dict[str, object]]:
    clients: list[dict[str, object]] = json.loads(path.read_text())
    return clients


@contextmanager
def scratch_database(postgres: str | None) -> Iterator[str]:
    """A fresh database for one run, dropped after it: a SQLite file, or with `postgres` (a server
    URL) a new database on that server."""
    if postgres is None:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
        return
    with temporary_database(postgres, prefix="weft_bench") as url:
        yield url

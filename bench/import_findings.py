"""Assessments import throughput and memory: `python -m bench.import_findings`.

Writes JSON Lines files of synthetic assessments (100 findings each; 20,000 and 100,000 findings by
default), then imports each into a fresh database, SQLite and PostgreSQL (a database it creates and
drops on 127.0.0.1:5432, or `--pg-url`), through the service and once through `weft import
assessments`. Each import runs in a child process, so its peak RSS is its own: it stays flat as the
file grows, since the import holds one batch at a time."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, func, make_url, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from bench.dataset import scratch_database
from src.config import PROJECT_ROOT, Settings
from src.db import make_engine, transaction
from src.models import Factory, Finding, Question
from src.models.imports import ImportKind
from src.services.catalogue import load_catalogue

FINDINGS_PER_ASSESSMENT = 100
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Usage:
    """What a child process used: its peak RSS and its CPU time (user + system)."""

    peak_rss_mib: float
    cpu_seconds: float


@dataclass(frozen=True)
class Figures:
    database: str
    path: str
    findings: int
    seconds: float
    usage: Usage

    def line(self) -> str:
        rate = self.findings / self.seconds if self.seconds else 0.0
        return (
            f"{self.database:<10} {self.path:<8} {self.findings:>8,} findings "
            f"{self.seconds:>6.2f} s {rate:>9,.0f} findings/s   "
            f"importer CPU {self.usage.cpu_seconds:>5.2f} s   "
            f"peak RSS {self.usage.peak_rss_mib:>6.1f} MiB"
        )


def write_file(path: Path, assessments: int, questions: list[str]) -> None:
    """One assessment per synthetic factory, every tenth finding not compliant, with a note."""
    with path.open("w") as out:
        for n in range(assessments):
            findings = [
                {
                    "question": code,
                    "compliant": (n + index) % 10 != 0,
                    "note": None if (n + index) % 10 else "Seen on the production floor.",
                }
                for index, code in enumerate(questions[:FINDINGS_PER_ASSESSMENT])
            ]
            line = {
                "factory": f"BENCH-{n:06d}",
                "cycle": 1,
                "kind": "assessment",
                "announced": n % 2 == 0,
                "visit_start": "2026-02-02",
                "visit_end": "2026-02-04",
                "publish": False,
                "findings": findings,
            }
            out.write(json.dumps(line) + "\n")


def prepare(url: str, assessments: int) -> None:
    """Migrates the empty database and enrols one factory per assessment."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    engine = make_engine(url)
    with transaction(engine) as session:
        load_catalogue(session)
        session.add_all(
            Factory(
                programme_code=f"BENCH-{n:06d}",
                name=f"Bench Factory {n}",
                country="BD",
                enrolled_on=dt.date(2020, 1, 1),
            )
            for n in range(assessments)
        )
    engine.dispose()


def question_codes(url: str) -> list[str]:
    engine = make_engine(url)
    with Session(engine) as session:
        codes = list(session.scalars(select(col(Question.code)).order_by(col(Question.id))))
    engine.dispose()
    return codes


def stored_findings(url: str) -> int:
    engine = make_engine(url)
    with Session(engine) as session:
        found = int(session.scalar(select(func.count()).select_from(Finding)) or 0)
    engine.dispose()
    return found


def child(arguments: list[str], env: dict[str, str] | None = None) -> tuple[str, Usage]:
    """Runs a child to its end: its stdout, and what it alone used."""
    process = subprocess.Popen(
        arguments, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments[1:5])} exited with {process.returncode}")
    # Linux reports ru_maxrss in KiB
    return output, Usage(usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def import_in_child(url: str, path: Path) -> tuple[float, Usage]:
    """`run_import` in a fresh interpreter, timed (wall and CPU) around the import alone."""
    output, usage = child([sys.executable, "-m", "bench.import_findings", "--run", url, str(path)])
    timed = json.loads(output)
    return float(timed["seconds"]), Usage(usage.peak_rss_mib, float(timed["cpu_seconds"]))


def import_with_cli(url: str, path: Path) -> tuple[float, Usage]:
    """`weft import assessments FILE`, timed from the interpreter's start."""
    env = os.environ | {"WEFT_DATABASE_URL": url}
    started = time.perf_counter()
    _output, usage = child(
        [sys.executable, "-m", "src.cli", "import", "assessments", str(path)], env
    )
    return time.perf_counter() - started, usage


def run_one(url: str, path: Path) -> None:
    """The child's side: one import in one transaction, timed; prints {"seconds": ...}."""
    from src.services.imports import run_import

    engine = make_engine(url)
    settings = Settings(database_url=url)
    with path.open("rb") as source:
        started, cpu_started = time.perf_counter(), time.process_time()
        with transaction(engine) as session:
            record = run_import(
                session,
                kind=ImportKind.assessments,
                filename=path.name,
                source=source,
                settings=settings,
            )
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if record.counts["failed"]:
        raise SystemExit(f"unexpected errors: {record.errors[:3]}")
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds}))  # noqa: T201


def reachable(server_url: str) -> bool:
    engine = create_engine(make_url(server_url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect():
            return True
    except OperationalError as exc:
        print(f"PostgreSQL skipped: {exc.orig}")  # noqa: T201
        return False
    finally:
        engine.dispose()


def bench(label: str, server_url: str | None, sizes: list[int], workdir: Path, repeat: int) -> None:
    """Each size through the service, the largest also through the CLI; a fresh database each
    time. The service import runs `repeat` times: the fastest is printed, with the slowest."""
    for size in sizes:
        assessments = size // FINDINGS_PER_ASSESSMENT
        file = workdir / f"assessments-{size}.jsonl"
        for path_name in ["service", "cli"] if size == max(sizes) else ["service"]:
            runs = []
            for _ in range(repeat if path_name == "service" else 1):
                with scratch_database(server_url) as url:
                    prepare(url, assessments)
                    if not file.exists():
                        write_file(file, assessments, question_codes(url))
                    runner = import_in_child if path_name == "service" else import_with_cli
                    seconds, usage = runner(url, file)
                    written = stored_findings(url)
                if written != assessments * FINDINGS_PER_ASSESSMENT:
                    raise SystemExit(f"{label}: {written} findings stored, not {size}")
                runs.append(Figures(label, path_name, written, seconds, usage))
            runs.sort(key=lambda figures: figures.seconds)
            slowest = (
                f"   (slowest of {len(runs)}: {runs[-1].seconds:.2f} s)" if len(runs) > 1 else ""
            )
            print(runs[0].line() + slowest, flush=True)  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000", help="Findings per file")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="A PostgreSQL server to use")
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="Which of sqlite,postgresql to measure"
    )
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each service import")
    parser.add_argument("--run", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_one(args.run[0], Path(args.run[1]))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="weft-bench-") as tmp:
        if "sqlite" in args.databases:
            bench("sqlite", None, sizes, Path(tmp), args.repeat)
        if "postgresql" in args.databases and reachable(args.pg_url):
            bench("postgresql", args.pg_url, sizes, Path(tmp), args.repeat)


if __name__ == "__main__":
    main()

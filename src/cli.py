"""The `weft` command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from alembic import command
from alembic.config import Config
from pydantic import ValidationError
from rich.console import Console
from typer.core import TyperGroup

from src.config import PROJECT_ROOT, Settings, get_settings
from src.db import engine_for, transaction

# Options taking several values, written as DESIGN.md writes them (`--scopes a b`) or repeated.
SEVERAL_VALUED = frozenset({"--scopes", "--supply-chain", "--acts-for"})


def spread_values(args: Sequence[str]) -> list[str]:
    """`args` with each value after the first of a several-valued option given its own flag:
    `--scopes a b` becomes `--scopes a --scopes b`, which is how Click reads several values."""
    spread: list[str] = []
    option: str | None = None
    had_value = False
    for arg in args:
        if arg.startswith("-"):
            option, had_value = (arg if arg in SEVERAL_VALUED else None), False
        elif option is not None:
            if had_value:
                spread.append(option)
            had_value = True
        spread.append(arg)
    return spread


class _Commands(TyperGroup):
    def main(self, args: Sequence[str] | None = None, *rest: Any, **options: Any) -> Any:
        return super().main(spread_values(sys.argv[1:] if args is None else args), *rest, **options)


app = typer.Typer(
    help="Weft: supplier labour-compliance data for brands and retailers.",
    no_args_is_help=True,
    cls=_Commands,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
seed_app = typer.Typer(help="Load datasets.", no_args_is_help=True)
clients_app = typer.Typer(help="API clients.", no_args_is_help=True)
keys_app = typer.Typer(help="Token signing keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(seed_app, name="seed")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
orgs_app = typer.Typer(help="Organisations.", no_args_is_help=True)
app.add_typer(orgs_app, name="organizations")
import_app = typer.Typer(help="Bulk imports from files.", no_args_is_help=True)
app.add_typer(import_app, name="import")

console = Console(stderr=True)
DEMO_CLIENTS_FILE = PROJECT_ROOT / "var" / "demo-clients.json"


def load_settings() -> Settings:
    """Settings, or one clear line and exit code 2 when an environment variable is wrong."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"WEFT_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        console.print(f"[red]Invalid settings[/red]: {problems}")
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    settings = load_settings()
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = settings.database_url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    console.print("Database schema is at the newest migration.")


@seed_app.command("demo")
def seed_demo(
    clients_file: Annotated[
        Path, typer.Option(help="Where to write the demo client credentials")
    ] = DEMO_CLIENTS_FILE,
) -> None:
    """Load the deterministic demo dataset and write its client credentials."""
    from src.services.demo import seed_demo as load

    settings = load_settings()
    with (
        console.status("Loading the demo dataset…"),
        transaction(engine_for(settings.database_url)) as session,
    ):
        summary = load(session)
    clients_file.parent.mkdir(parents=True, exist_ok=True)
    clients_file.write_text(json.dumps(summary.clients, indent=2) + "\n")
    console.print(
        f"Demo data: {summary.organizations} organisations, {summary.factories} factories; "
        f"client credentials in {clients_file}"
    )


@seed_app.command("synthetic")
def seed_synthetic(
    factories: Annotated[int, typer.Option(min=1, help="How many factories")],
    cycles: Annotated[int, typer.Option(min=1, max=20, help="Assessment cycles each")] = 5,
    buyers: Annotated[int, typer.Option(min=2, help="Buyer organisations")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed: one seed, one dataset")] = 0,
    clients_file: Annotated[
        Path, typer.Option(help="Where to write the client credentials")
    ] = PROJECT_ROOT / "var" / "synthetic-clients.json",
) -> None:
    """Build a realistic dataset of any size (for benchmarks) into an empty database."""
    from rich.progress import Progress

    from src.services.synthetic import seed_synthetic as build

    settings = load_settings()
    with Progress(console=console) as progress:
        task = progress.add_task("Factories", total=factories)
        dataset = build(
            engine_for(settings.database_url), factories=factories, cycles=cycles, buyers=buyers,
            seed=seed, on_batch=lambda done: progress.update(task, completed=done),
        )  # fmt: skip
    clients_file.parent.mkdir(parents=True, exist_ok=True)
    clients_file.write_text(json.dumps(dataset.clients, indent=2) + "\n")
    console.print(
        f"Synthetic data: {dataset.factories} factories, {dataset.assessments} assessments, "
        f"{dataset.findings} findings; client credentials in {clients_file}"
    )


@orgs_app.command("create")
def organizations_create(
    name: Annotated[str, typer.Option(help="The organisation's name")],
    kind: Annotated[str, typer.Option(help="programme, buyer or partner")],
    acts_for: Annotated[
        list[str] | None, typer.Option("--acts-for", help="Partners: the buyer org ids it acts for")
    ] = None,
) -> None:
    """Register an organisation and print it (how the first programme organisation is made)."""
    from src.models.organizations import OrganizationCreate
    from src.services.errors import DomainError
    from src.services.organizations import create_organization

    settings = load_settings()
    try:
        data = OrganizationCreate(name=name, kind=kind, acts_for=acts_for or [])
        with transaction(engine_for(settings.database_url)) as session:
            org = create_organization(session, data=data)
    except (DomainError, ValidationError) as exc:
        console.print(f"[red]Refused[/red]: {exc}")
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"id": org.id, "name": org.name, "kind": str(org.kind)}, indent=2))


@clients_app.command("create")
def clients_create(
    org: Annotated[str, typer.Option(help="Organisation id (org_...)")],
    scopes: Annotated[
        list[str] | None,
        typer.Option("--scopes", help="Scopes, several after the flag (or in one quoted value)"),
    ] = None,
    supply_chain: Annotated[
        list[str] | None,
        typer.Option("--supply-chain", help="Supply chain ids, several after the flag"),
    ] = None,
    name: Annotated[str, typer.Option(help="A name to recognise the client by")] = "cli client",
) -> None:
    """Create an API client and print its secret (shown only this once)."""
    from src.services.clients import create_client
    from src.services.errors import DomainError

    settings = load_settings()
    wanted = [scope for chunk in scopes or [] for scope in chunk.replace(",", " ").split()]
    try:
        with transaction(engine_for(settings.database_url)) as session:
            created = create_client(
                session,
                org_id=org,
                name=name,
                scopes=wanted or None,
                supply_chain_ids=supply_chain or [],
            )
    except DomainError as exc:
        console.print(f"[red]Refused[/red]: {exc}")
        raise typer.Exit(1) from None
    typer.echo(
        json.dumps(
            {
                "client_id": created.client.id,
                "client_secret": created.secret,
                "org_id": created.client.org_id,
                "scopes": created.client.scopes,
                "supply_chains": created.client.supply_chain_ids,
            },
            indent=2,
        )
    )


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Start signing with a new key; the old one still verifies until its tokens expire."""
    from src.services.signing_keys import rotate_keys

    settings = load_settings()
    with transaction(engine_for(settings.database_url)) as session:
        key = rotate_keys(session)
    console.print(f"Now signing with {key.id}.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="API processes")] = 1,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not deliver webhooks from this process")
    ] = False,
) -> None:
    """Serve the API (and deliver webhooks in the same process unless --no-worker)."""
    from src.worker import start_in_thread

    settings = load_settings()
    background = None if no_worker else start_in_thread(engine_for(settings.database_url), settings)
    try:
        uvicorn.run(
            "src.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            log_level=settings.log_level.lower(),
            proxy_headers=True,
        )
    finally:
        if background is not None:
            background.stop()


@app.command()
def worker() -> None:
    """Fan events out and deliver webhooks until SIGTERM or SIGINT (then finish sends in flight).
    Run several on PostgreSQL; on SQLite run one."""
    from src.log import configure_logging
    from src.worker import run_until_signalled

    settings = load_settings()
    configure_logging(settings.log_level)
    run_until_signalled(engine_for(settings.database_url), settings)


def demo_banner(clients: list[dict[str, Any]], base: str, factory_id: str) -> str:
    """Where the demo runs, every demo client's credentials, and a curl line that works."""
    buyer = next(c for c in clients if c["org_kind"] == "buyer")
    credentials = "".join(
        f"  {c['name']} ({c['org_kind']}): {c['client_id']}:{c['client_secret']}\n" for c in clients
    )
    return (
        "\n[bold]Weft demo[/bold] on " + base + f" (API reference: {base}/docs)\n"
        f"Demo clients (also in {DEMO_CLIENTS_FILE}), client_id:client_secret:\n{credentials}"
        "\nTry:\n"
        f"  TOKEN=$(curl -s -u {buyer['client_id']}:{buyer['client_secret']} "
        f"-d grant_type=client_credentials {base}/oauth/token | python3 -c "
        "'import sys, json; print(json.load(sys.stdin)[\"access_token\"])')\n"
        f'  curl -s -H "Authorization: Bearer $TOKEN" '
        f"{base}/v1/factories/{factory_id}/compliance-summary\n"
    )


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port")] = 8000,
) -> None:
    """Migrate, load the demo dataset, print the demo clients' credentials and a working curl line,
    and serve."""
    db_upgrade()
    seed_demo(DEMO_CLIENTS_FILE)
    from src.services.demo import first_consenting_factory

    clients = json.loads(DEMO_CLIENTS_FILE.read_text())
    base = f"http://127.0.0.1:{port}"
    console.print(
        demo_banner(clients, base, first_consenting_factory()), highlight=False, soft_wrap=True
    )
    serve(host="127.0.0.1", port=port, workers=1)


def _import_file(kind: str, path: Path) -> None:
    """Runs one import in one transaction, with a progress bar over the bytes read; prints the
    record as JSON on stdout and each bad row on stderr. Exits 1 unless every row was good."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from src.models.imports import ImportKind, ImportStatus
    from src.services.imports import import_read, run_import

    settings = load_settings()
    with (
        path.open("rb") as source,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
        ) as progress,
        transaction(engine_for(settings.database_url)) as session,
    ):
        task = progress.add_task(f"Importing {path.name}", total=path.stat().st_size)
        record = run_import(
            session,
            kind=ImportKind(kind),
            filename=path.name,
            source=source,
            settings=settings,
            on_read=lambda size: progress.advance(task, size),
        )
        read = import_read(record)
    for error in read.errors:
        console.print(f"line {error.line}, {error.field}: {error.message}", highlight=False)
    typer.echo(read.model_dump_json(include={"id", "kind", "filename", "status", "counts"}))
    if read.status != ImportStatus.succeeded:
        raise typer.Exit(1)


ImportFile = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The file to import")
]


@import_app.command("factories")
def import_factories_file(file: ImportFile) -> None:
    """Enrol or update factories from a CSV file (all or nothing)."""
    _import_file("factories", file)


@import_app.command("assessments")
def import_assessments_file(file: ImportFile) -> None:
    """Write assessments from a JSON Lines file (each good one kept, each bad one reported)."""
    _import_file("assessments", file)


@import_app.command("survey")
def import_survey_file(file: ImportFile) -> None:
    """Load survey responses from a CSV file (all or nothing)."""
    _import_file("survey", file)


if __name__ == "__main__":
    app()

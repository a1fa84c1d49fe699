"""`weft seed synthetic`: a realistic dataset of any size for benchmarks, deterministic per seed.

Factories are generated and written in batches (factories, links, assessments, findings,
remediation items, then their summaries), each batch committed before the next is built, so memory
stays flat whatever the size."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Table, func, insert, text
from sqlmodel import Session, SQLModel, col, select
from ulid import ULID

from src.db import transaction, utcnow
from src.models import (
    Assessment,
    Client,
    Consent,
    Factory,
    Finding,
    Organization,
    Question,
    RemediationItem,
    Subscription,
    SupplyChain,
    SupplyChainLink,
)
from src.models.factories import encode_item
from src.models.organizations import OrgKind
from src.models.supply_chains import encode_code
from src.services.catalogue import current_version, load_catalogue, load_survey_questions
from src.services.clients import SCOPES_BY_KIND, hash_secret
from src.services.compliance_summaries import refresh_summary
from src.services.signing_keys import current_signing_key

BATCH = 250
COUNTRIES = ("BD", "VN", "KH", "ID", "JO", "EG", "ET", "HT", "NI", "PK")
SECTORS = ("garment", "garment", "knitwear", "knitwear", "denim", "footwear", "textile")
STATUSES = ("active",) * 17 + ("enrolled", "suspended", "exited")
EPOCH = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)


@dataclass
class SyntheticDataset:
    factories: int = 0
    assessments: int = 0
    findings: int = 0
    clients: list[dict[str, Any]] = field(default_factory=list)


class _Ids:
    """ULIDs whose random part comes from the seed, so one seed always gives the same ids."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._ms = int(EPOCH.timestamp() * 1000)

    def __call__(self, prefix: str) -> str:
        self._ms += 1
        return f"{prefix}_{ULID.from_bytes(self._ms.to_bytes(6, 'big') + self._rng.randbytes(10))}"


def seed_synthetic(
    engine: Engine,
    *,
    factories: int,
    cycles: int = 5,
    buyers: int = 20,
    seed: int = 0,
    on_batch: Callable[[int], None] = lambda _done: None,
) -> SyntheticDataset:
    """Builds the dataset and its stored summaries; `on_batch` hears how many factories are done."""
    rng = random.Random(seed)
    new_id = _Ids(rng)
    dataset = SyntheticDataset()
    with transaction(engine) as session:
        load_catalogue(session)
        load_survey_questions(session)
        current_signing_key(session)
        version = current_version(session)
        assert version is not None
        questions = list(
            session.exec(
                select(col(Question.id), col(Question.critical)).where(
                    col(Question.version) == version.version
                )
            ).all()
        )
        chains = _organisations(session, new_id, buyers, seed, dataset)
    # The first buyer's chain takes a quarter of the factories, the others share three links each.
    for start in range(0, factories, BATCH):
        size = min(BATCH, factories - start)
        with transaction(engine) as session:
            written_at = utcnow()
            factory_ids = _factories(session, new_id, rng, start, size, written_at)
            _links(session, new_id, rng, start, factory_ids, chains, written_at)
            dataset.assessments += cycles * size
            dataset.findings += _assessments(
                session, new_id, rng, factory_ids, cycles, version.version, questions
            )
            for factory_id in factory_ids:
                refresh_summary(session, factory_id=factory_id)
        dataset.factories += size
        on_batch(dataset.factories)
    with transaction(engine) as session:
        _resync_sequence(session)
    # The planner's statistics, which a bulk load leaves behind (without them PostgreSQL chose a
    # plan for the factory page that sorted every visible factory: 25 ms instead of 1 ms); on
    # PostgreSQL also the visibility map, without which an index-only scan still reads each row
    # (the supply-chain aggregate's bands: 22 → 11 ms). Autovacuum would do both in a while.
    refresh = "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(refresh)
    return dataset


def _organisations(
    session: Session, new_id: _Ids, buyers: int, seed: int, dataset: SyntheticDataset
) -> list[tuple[str, str]]:
    """The programme, buyers with subscriptions and one supply chain each; answers (chain, org)."""
    programme = Organization(id=new_id("org"), name="Programme (synthetic)", kind=OrgKind.programme)
    session.add(programme)
    chains = []
    orgs: list[tuple[Organization, str | None]] = [(programme, None)]
    for n in range(buyers):
        buyer = Organization(id=new_id("org"), name=f"Synthetic Buyer {n + 1}", kind=OrgKind.buyer)
        chain = SupplyChain(id=new_id("sc"), org_id=buyer.id, name="All suppliers")
        session.add_all([buyer, chain])
        session.flush()
        session.add(
            Subscription(
                id=new_id("sub"), org_id=buyer.id, tier="standard", starts_on=dt.date(2024, 1, 1)
            )
        )
        chains.append((chain.id, buyer.id))
        orgs.append((buyer, chain.id))
    session.flush()
    for org, chain_id in orgs[:3]:
        secret = f"wsec_synthetic_{seed}_{org.id[-8:].lower()}"
        client = Client(
            id=new_id("cli"),
            org_id=org.id,
            name=f"{org.name} client",
            secret_hash=hash_secret(secret),
            scopes=list(SCOPES_BY_KIND[org.kind]),
            supply_chain_ids=[chain_id] if chain_id else [],
        )
        session.add(client)
        dataset.clients.append(
            {
                "name": client.name,
                "client_id": client.id,
                "client_secret": secret,
                "org_id": org.id,
                "org_kind": org.kind.value,
                "scopes": client.scopes,
                "supply_chains": client.supply_chain_ids,
            }
        )
    return chains


def _factories(
    session: Session, new_id: _Ids, rng: random.Random, start: int, size: int, now: dt.datetime
) -> list[str]:
    rows: list[dict[str, Any]] = []
    for n in range(start, start + size):
        country = COUNTRIES[n % len(COUNTRIES)]
        total = rng.randint(300, 12000)
        rows.append(
            {
                "id": new_id("fac"),
                "programme_code": f"SYN-{country}-{n:07d}",
                "name": f"{country} Synthetic Garments {n:07d}",
                "country": country,
                "address": f"Plot {rng.randint(1, 999)}, Industrial Zone {rng.randint(1, 40)}",
                "os_id": f"{country}2024{n:09d}",
                "sector": rng.choice(SECTORS),
                "workers_total": total,
                "workers_women": int(total * rng.uniform(0.45, 0.85)),
                "status": rng.choice(STATUSES),
                "enrolled_on": dt.date(2015, 1, 1) + dt.timedelta(days=rng.randint(0, 3000)),
                "created_at": now,
                "updated_at": now,
                "risk_band": None,  # until `refresh_summary` gives the factory its band
            }
        )
        # A bulk insert skips the ORM's flush, which encodes the row.
        rows[-1]["item_json"] = encode_item(rows[-1])
    session.execute(insert(Factory), rows)
    return [row["id"] for row in rows]


def _links(
    session: Session,
    new_id: _Ids,
    rng: random.Random,
    start: int,
    factory_ids: list[str],
    chains: list[tuple[str, str]],
    factories_updated_at: dt.datetime,
) -> None:
    links, consents = [], []
    for n, factory_id in enumerate(factory_ids, start):
        chosen = {chains[0]} if rng.random() < 0.25 else set()
        chosen |= set(rng.sample(chains[1:], k=min(3, len(chains) - 1)))
        # Sorted: a set's order follows string hashing, which differs from process to process.
        for chain_id, org_id in sorted(chosen):
            # The factory's number makes it unique in every chain, as the schema requires.
            supplier_code = f"V{rng.randint(100, 999)}{n:07d}"
            links.append(
                {
                    "id": new_id("lnk"),
                    "supply_chain_id": chain_id,
                    "factory_id": factory_id,
                    "supplier_code": supplier_code,
                    "starts_on": dt.date(2024, 1, 1),
                    # A bulk insert skips the ORM's flush, which copies and encodes these.
                    "factory_updated_at": factories_updated_at,
                    "code_json": encode_code(chain_id, supplier_code),
                }
            )
            if rng.random() < 0.5:
                consents.append({"id": new_id("cns"), "factory_id": factory_id, "org_id": org_id})
    session.execute(insert(SupplyChainLink), links)
    if consents:
        session.execute(insert(Consent), consents)


def _assessments(
    session: Session,
    new_id: _Ids,
    rng: random.Random,
    factory_ids: list[str],
    cycles: int,
    version: str,
    questions: Any,
) -> int:
    """`cycles` yearly published assessments of ~100 findings for each factory, written with three
    bulk statements; answers the finding count."""
    assessments: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for factory_id in factory_ids:
        strictness = rng.uniform(0.02, 0.25)
        for cycle in range(1, cycles + 1):
            visit = dt.date(2020 + cycle, 1, 1) + dt.timedelta(days=rng.randint(0, 300))
            assessment = {
                "id": new_id("asm"), "factory_id": factory_id, "catalogue_version": version,
                "cycle": cycle, "kind": "assessment", "announced": rng.random() < 0.7,
                "visit_start": visit, "visit_end": visit + dt.timedelta(days=1),
                "status": "published", "published_at": EPOCH,
            }  # fmt: skip
            assessments.append(assessment)
            for question_id, critical in rng.sample(questions, k=min(100, len(questions))):
                failing = strictness / 4 if critical else strictness
                findings.append({
                    "assessment_id": assessment["id"], "question_id": question_id,
                    "compliant": rng.random() > failing, "note": None,
                    "_assessment": assessment, "_last": cycle == cycles, "_critical": critical,
                })  # fmt: skip
    connection = session.connection()
    # Ids are assigned here so that plain executemany (no RETURNING) does the bulk of the work;
    # the seeder is the only writer, and `_resync_sequence` tells PostgreSQL afterwards.
    next_id = (connection.execute(select(func.max(col(Finding.id)))).scalar() or 0) + 1
    for offset, row in enumerate(findings):
        row["id"] = next_id + offset
    connection.execute(insert(table(Assessment)), assessments)
    columns = ("id", "assessment_id", "question_id", "compliant", "note")
    connection.execute(
        insert(table(Finding)), [{column: row[column] for column in columns} for row in findings]
    )
    items = [
        {
            "id": new_id("rem"),
            "factory_id": row["_assessment"]["factory_id"],
            "assessment_id": row["assessment_id"],
            "finding_id": row["id"],
            "question_id": row["question_id"],
            "critical": row["_critical"],
            "action": "Correct the non-compliance",
            "owner": "factory management",
            "due_on": row["_assessment"]["visit_end"] + dt.timedelta(days=90),
            "status": rng.choice(("open", "in_progress", "done")) if row["_last"] else "verified",
        }  # fmt: skip
        for row in findings
        if not row["compliant"]
    ]
    if items:
        connection.execute(insert(table(RemediationItem)), items)
    return len(findings)


def table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


def _resync_sequence(session: Session) -> None:
    """PostgreSQL's id sequence learns the ids the seeder assigned itself."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT setval(pg_get_serial_sequence('findings', 'id'), max(id)) FROM findings")
        )

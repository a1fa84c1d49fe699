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

from sqlalchemy import Engine, insert
from sqlmodel import Session, col, select
from ulid import ULID

from src.db import transaction
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
from src.models.organizations import OrgKind
from src.services.catalogue import current_version, load_catalogue, load_survey_questions
from src.services.clients import SCOPES_BY_KIND, hash_secret
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
    summarise: Callable[[Session, list[str]], None],
) -> SyntheticDataset:
    """Builds the dataset; `summarise` computes the stored summaries of a batch of factories."""
    rng = random.Random(seed)
    new_id = _Ids(rng)
    dataset = SyntheticDataset()
    with transaction(engine) as session:
        load_catalogue(session)
        load_survey_questions(session)
        current_signing_key(session)
        version = current_version(session)
        assert version is not None
        questions = session.exec(
            select(col(Question.id), col(Question.critical)).where(
                col(Question.version) == version.version
            )
        ).all()
        chains = _organisations(session, new_id, buyers, seed, dataset)
    # The first buyer's chain takes a quarter of the factories, the others share three links each.
    for start in range(0, factories, BATCH):
        size = min(BATCH, factories - start)
        with transaction(engine) as session:
            factory_ids = _factories(session, new_id, rng, start, size)
            _links(session, new_id, rng, factory_ids, chains)
            for factory_id in factory_ids:
                dataset.assessments += cycles
                dataset.findings += _assessments(
                    session, new_id, rng, factory_id, cycles, version.version, questions
                )
            summarise(session, factory_ids)
        dataset.factories += size
        on_batch(dataset.factories)
    return dataset


def _organisations(
    session: Session, new_id: _Ids, buyers: int, seed: int, dataset: SyntheticDataset
) -> list[tuple[str, str]]:
    """The programme, buyers with subscriptions and one supply chain each; answers (chain, org)."""
    programme = Organization(id=new_id("org"), name="Programme (synthetic)", kind=OrgKind.programme)
    session.add(programme)
    chains = []
    orgs = [(programme, None)]
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
    session: Session, new_id: _Ids, rng: random.Random, start: int, size: int
) -> list[str]:
    rows = []
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
            }
        )
    session.execute(insert(Factory), rows)
    return [row["id"] for row in rows]


def _links(
    session: Session,
    new_id: _Ids,
    rng: random.Random,
    factory_ids: list[str],
    chains: list[tuple[str, str]],
) -> None:
    links, consents = [], []
    for factory_id in factory_ids:
        chosen = {chains[0]} if rng.random() < 0.25 else set()
        chosen |= set(rng.sample(chains[1:], k=min(3, len(chains) - 1)))
        for chain_id, org_id in chosen:
            links.append(
                {
                    "id": new_id("lnk"),
                    "supply_chain_id": chain_id,
                    "factory_id": factory_id,
                    "supplier_code": f"V{rng.randint(0, 10**8)}",
                    "starts_on": dt.date(2024, 1, 1),
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
    factory_id: str,
    cycles: int,
    version: str,
    questions: Any,
) -> int:
    """`cycles` yearly published assessments of ~100 findings each; answers the finding count."""
    strictness = rng.uniform(0.02, 0.25)
    findings = 0
    for cycle in range(1, cycles + 1):
        visit = dt.date(2020 + cycle, 1, 1) + dt.timedelta(days=rng.randint(0, 300))
        assessment_id = new_id("asm")
        session.execute(
            insert(Assessment),
            [
                {
                    "id": assessment_id,
                    "factory_id": factory_id,
                    "catalogue_version": version,
                    "cycle": cycle,
                    "kind": "assessment",
                    "announced": rng.random() < 0.7,
                    "visit_start": visit,
                    "visit_end": visit + dt.timedelta(days=1),
                    "status": "published",
                    "published_at": EPOCH,
                }
            ],
        )
        asked = rng.sample(list(questions), k=min(100, len(questions)))
        rows = [
            {
                "assessment_id": assessment_id,
                "question_id": question_id,
                "compliant": rng.random() > (strictness / 4 if critical else strictness),
                "note": None,
            }
            for question_id, critical in asked
        ]
        ids = (
            session.execute(
                insert(Finding).returning(col(Finding.id), sort_by_parameter_order=True), rows
            )
            .scalars()
            .all()
        )
        items = [
            {
                "id": new_id("rem"),
                "factory_id": factory_id,
                "assessment_id": assessment_id,
                "finding_id": finding_id,
                "question_id": row["question_id"],
                "action": "Correct the non-compliance",
                "owner": "factory management",
                "due_on": visit + dt.timedelta(days=90),
                "status": "verified"
                if cycle < cycles
                else rng.choice(("open", "in_progress", "done")),
            }
            for finding_id, row in zip(ids, rows, strict=True)
            if not row["compliant"]
        ]
        if items:
            session.execute(insert(RemediationItem), items)
        findings += len(rows)
    return findings

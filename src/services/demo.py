"""The deterministic demo dataset (`weft seed demo`): same content every run, safe to run twice.

Demo ids are derived from stable keys, so a fresh database always gets the same ids, and demo
client secrets are fixed, so `var/demo-clients.json` stays valid across re-seeding."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session
from ulid import ULID

from src.models import (
    Client,
    Consent,
    Delegation,
    Factory,
    Organization,
    Subscription,
    SupplyChain,
    SupplyChainLink,
)
from src.models.factories import FactoryStatus
from src.models.organizations import OrgKind
from src.services.catalogue import DATA_DIR, load_catalogue, load_survey_questions
from src.services.clients import SCOPES_BY_KIND, hash_secret
from src.services.demo_compliance import seed_demo_compliance
from src.services.demo_surveys import seed_demo_surveys
from src.services.signing_keys import current_signing_key

DEMO_EPOCH_MS = int(dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp() * 1000)


def demo_id(prefix: str, key: str) -> str:
    """A stable id: creation order from the key's place in the dataset, the rest from its hash."""
    digest = hashlib.sha256(f"{prefix}:{key}".encode()).digest()
    order = int.from_bytes(digest[:3], "big") % 1_000_000
    return f"{prefix}_{ULID.from_bytes((DEMO_EPOCH_MS + order).to_bytes(6, 'big') + digest[6:16])}"


@dataclass(frozen=True)
class DemoOrg:
    key: str
    name: str
    kind: OrgKind
    subscription: tuple[dt.date, dt.date | None] | None = None
    client: bool = False


@dataclass
class DemoSummary:
    clients: list[dict[str, Any]] = field(default_factory=list)
    factories: int = 0
    organizations: int = 0


ORGS = [
    DemoOrg("programme", "Better Work Programme (demo)", OrgKind.programme, client=True),
    DemoOrg(
        "northwind",
        "Northwind Apparel",
        OrgKind.buyer,
        (dt.date(2025, 1, 1), dt.date(2027, 12, 31)),
        client=True,
    ),
    DemoOrg(
        "harbour", "Harbour & Pine Retail", OrgKind.buyer, (dt.date(2025, 7, 1), None), client=True
    ),
    DemoOrg(
        "lumen",
        "Lumen Outfitters",
        OrgKind.buyer,
        (dt.date(2023, 1, 1), dt.date(2025, 6, 30)),
        client=True,
    ),
    DemoOrg("threadlink", "ThreadLink Sourcing Platform", OrgKind.partner, client=True),
    DemoOrg("alder", "Alder & Finch", OrgKind.buyer, (dt.date(2024, 1, 1), None)),
    DemoOrg("corvid", "Corvid Sportswear", OrgKind.buyer, (dt.date(2024, 1, 1), None)),
    DemoOrg("dunmore", "Dunmore Denim Co.", OrgKind.buyer, (dt.date(2024, 1, 1), None)),
    DemoOrg("estuary", "Estuary Home Textiles", OrgKind.buyer, (dt.date(2024, 1, 1), None)),
    DemoOrg("fennel", "Fennel Kids", OrgKind.buyer, (dt.date(2024, 1, 1), None)),
    DemoOrg("gannet", "Gannet Outdoor", OrgKind.buyer, (dt.date(2024, 1, 1), None)),
    DemoOrg("heron", "Heron Basics", OrgKind.buyer, (dt.date(2024, 1, 1), None)),
]

# Supply chains: (owner key, chain key, name, factory positions in the demo factory file).
CHAINS: list[tuple[str, str, str, range | list[int]]] = [
    ("northwind", "nw-knit", "Knitwear, South and South-East Asia", range(0, 24)),
    ("northwind", "nw-woven", "Woven and Denim", range(40, 52)),
    ("harbour", "hp-core", "Core suppliers", range(16, 40)),
    ("lumen", "lu-all", "All suppliers", range(0, 10)),
]
# Factory positions that consent to full disclosure, per buyer.
CONSENTS = {"northwind": range(0, 12), "harbour": range(20, 30)}
DELEGATIONS = [("northwind", "threadlink")]
# The chains a demo client's tokens name. The buyers' name none, so that they read every chain of
# their organisation, those they create too; the partner's names one of Northwind's, to show a
# token limited to named chains.
NAMED_CHAINS = {"threadlink": ["nw-knit"]}


def demo_secret(org_key: str) -> str:
    return (
        f"wsec_demo_{org_key}_" + hashlib.sha256(f"weft-demo:{org_key}".encode()).hexdigest()[:24]
    )


def first_consenting_factory() -> str:
    """A factory in the first demo buyer's supply chain that consents to it (for the demo's curl)."""
    position = CONSENTS["northwind"][0]
    return demo_id("fac", read_demo_factories()[position]["programme_code"])


def read_demo_factories() -> list[dict[str, str]]:
    with (DATA_DIR / "demo_factories.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _upsert(session: Session, row: Any) -> Any:
    """Adds the row unless one with its primary key exists; answers the stored row."""
    existing = session.get(type(row), session.identity_key(instance=row)[1])
    if existing is not None:
        return existing
    session.add(row)
    return row


def seed_demo(session: Session) -> DemoSummary:
    load_catalogue(session)
    load_survey_questions(session)
    current_signing_key(session)
    summary = DemoSummary()
    orgs: dict[str, Organization] = {}
    for demo_org in ORGS:
        org = _upsert(
            session,
            Organization(id=demo_id("org", demo_org.key), name=demo_org.name, kind=demo_org.kind),
        )
        orgs[demo_org.key] = org
        if demo_org.subscription:
            starts_on, ends_on = demo_org.subscription
            _upsert(
                session,
                Subscription(
                    id=demo_id("sub", demo_org.key),
                    org_id=org.id,
                    tier="standard",
                    starts_on=starts_on,
                    ends_on=ends_on,
                ),
            )
    for buyer_key, partner_key in DELEGATIONS:
        buyer_id, partner_id = orgs[buyer_key].id, orgs[partner_key].id
        if session.get(Delegation, (partner_id, buyer_id)) is None:
            session.add(Delegation(partner_org_id=partner_id, buyer_org_id=buyer_id))
    session.flush()

    factories = [
        _upsert(
            session,
            Factory(
                id=demo_id("fac", row["programme_code"]),
                programme_code=row["programme_code"],
                name=row["name"],
                country=row["country"],
                address=row["address"],
                os_id=row["os_id"] or None,
                sector=row["sector"],
                workers_total=int(row["workers_total"]),
                workers_women=int(row["workers_women"]),
                status=FactoryStatus(row["status"]),
                enrolled_on=dt.date.fromisoformat(row["enrolled_on"]),
            ),
        )
        for row in read_demo_factories()
    ]
    session.flush()

    for owner, chain_key, name, positions in CHAINS:
        chain = _upsert(
            session, SupplyChain(id=demo_id("sc", chain_key), org_id=orgs[owner].id, name=name)
        )
        session.flush()
        for position in positions:
            factory = factories[position]
            _upsert(
                session,
                SupplyChainLink(
                    id=demo_id("lnk", f"{chain_key}:{factory.id}"),
                    supply_chain_id=chain.id,
                    factory_id=factory.id,
                    supplier_code=f"{owner[:2].upper()}-{1000 + position}",
                    starts_on=dt.date(2024, 1, 1) + dt.timedelta(days=position * 7),
                ),
            )
    for buyer_key, positions in CONSENTS.items():
        for position in positions:
            factory = factories[position]
            _upsert(
                session,
                Consent(
                    id=demo_id("cns", f"{buyer_key}:{factory.id}"),
                    factory_id=factory.id,
                    org_id=orgs[buyer_key].id,
                ),
            )
    session.flush()

    for demo_org in ORGS:
        if not demo_org.client:
            continue
        org = orgs[demo_org.key]
        secret = demo_secret(demo_org.key)
        named = [demo_id("sc", key) for key in NAMED_CHAINS.get(demo_org.key, [])]
        own = [demo_id("sc", key) for owner, key, *_ in CHAINS if owner == demo_org.key]
        client = _upsert(
            session,
            Client(
                id=demo_id("cli", demo_org.key),
                org_id=org.id,
                name=f"{demo_org.name} demo client",
                secret_hash=hash_secret(secret),
                scopes=list(SCOPES_BY_KIND[demo_org.kind]),
                supply_chain_ids=named,
            ),
        )
        summary.clients.append(
            {
                "name": client.name,
                "client_id": client.id,
                "client_secret": secret,
                "org_id": org.id,
                "org_kind": demo_org.kind.value,
                "scopes": list(client.scopes),
                # The chains it reads: those its tokens name, or its organisation's own.
                "supply_chains": named or own,
            }
        )
    session.flush()
    seed_demo_surveys(session, orgs, factories)
    seed_demo_compliance(session, factories)
    summary.factories = len(factories)
    summary.organizations = len(orgs)
    return summary

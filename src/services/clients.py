"""API clients: creation (the secret is shown once and stored hashed), authentication, revocation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session, col, select

from src.db import utcnow
from src.models import Client, Organization
from src.models.clients import ClientRead, ClientWithSecret
from src.models.organizations import OrgKind
from src.services.access import chains_usable_by
from src.services.errors import InvalidInput, NotFound
from src.services.pagination import Page, paginate

BUYER_SCOPES = (
    "factories:read",
    "compliance:read",
    "scorecards:read",
    "supply-chains:write",
    "webhooks:manage",
    "events:read",
)
PARTNER_SCOPES = ("factories:read", "compliance:read", "webhooks:manage", "events:read")
ALL_SCOPES = (*BUYER_SCOPES, "admin")
SCOPES_BY_KIND: dict[OrgKind, tuple[str, ...]] = {
    OrgKind.programme: ALL_SCOPES,
    OrgKind.buyer: BUYER_SCOPES,
    OrgKind.partner: PARTNER_SCOPES,
}


@dataclass(frozen=True)
class NewClient:
    client: Client
    secret: str


def hash_secret(secret: str) -> str:
    # Secrets are 256 random bits, so a plain SHA-256 is as strong as a slow password hash here.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_client(
    session: Session,
    *,
    org_id: str,
    name: str,
    scopes: Sequence[str] | None = None,
    supply_chain_ids: Sequence[str] = (),
) -> NewClient:
    org = session.get(Organization, org_id)
    if org is None:
        raise InvalidInput.at("org_id", f"no organization {org_id}")
    allowed = SCOPES_BY_KIND[OrgKind(org.kind)]
    wanted = list(dict.fromkeys(scopes)) if scopes else list(allowed)
    refused = [scope for scope in wanted if scope not in allowed]
    if refused:
        raise InvalidInput.at(
            "scopes", f"a {org.kind} client cannot hold {', '.join(refused)}; allowed: {allowed}"
        )
    chains = list(dict.fromkeys(supply_chain_ids))
    _check_supply_chains(session, org, chains)
    secret = "wsec_" + secrets.token_urlsafe(32)
    client = Client(
        org_id=org.id,
        name=name,
        secret_hash=hash_secret(secret),
        scopes=wanted,
        supply_chain_ids=chains,
    )
    session.add(client)
    session.flush()
    return NewClient(client=client, secret=secret)


def _check_supply_chains(session: Session, org: Organization, chain_ids: list[str]) -> None:
    if not chain_ids:
        return
    if org.kind == OrgKind.programme:
        raise InvalidInput.at("supply_chains", "programme clients see everything; name none")
    usable = chains_usable_by(session, org.id, chain_ids)
    for index, chain_id in enumerate(chain_ids):
        if chain_id not in usable:
            raise InvalidInput.at(
                f"supply_chains.{index}", f"{chain_id} is not a supply chain of {org.id}"
            )


def authenticate_client(session: Session, client_id: str, secret: str) -> Client | None:
    """The client if the secret matches and it is not revoked; compared in constant time."""
    client = session.get(Client, client_id)
    expected = client.secret_hash if client is not None else hash_secret("")
    matches = hmac.compare_digest(expected, hash_secret(secret))
    if client is None or not matches or client.revoked_at is not None:
        return None
    return client


def client_read(client: Client) -> ClientRead:
    return ClientRead(
        id=client.id,
        client_id=client.id,
        org_id=client.org_id,
        name=client.name,
        scopes=list(client.scopes),
        supply_chains=list(client.supply_chain_ids),
        created_at=client.created_at,
        revoked_at=client.revoked_at,
    )


def with_secret(created: NewClient) -> ClientWithSecret:
    read = client_read(created.client)
    return ClientWithSecret.model_validate(
        read.model_dump(exclude={"revoked_at"}) | {"client_secret": created.secret}
    )


def get_client(session: Session, *, client_id: str) -> Client:
    client = session.get(Client, client_id)
    if client is None:
        raise NotFound(f"No client {client_id}.")
    return client


def list_clients(
    session: Session, *, org_id: str | None, cursor: str | None, limit: int
) -> Page[ClientRead]:
    statement = select(Client)
    if org_id is not None:
        statement = statement.where(col(Client.org_id) == org_id)
    page = paginate(
        session,
        statement,
        kind="clients",
        order_by=[col(Client.id)],
        types=[str],
        cursor=cursor,
        limit=limit,
    )
    return Page(items=[client_read(c) for c in page.items], next_cursor=page.next_cursor)


def revoke_client(session: Session, client_id: str) -> Client:
    """Idempotent; the client's live tokens fail on their next request (see resolve_principal)."""
    client = get_client(session, client_id=client_id)
    if client.revoked_at is None:
        client.revoked_at = utcnow()
    session.add(client)
    session.flush()
    return client

"""Idempotency keys (draft-ietf-httpapi-idempotency-key-header): a POST's key is claimed by a row
before the request runs, completed with its answer afterwards, and replayed for 24 h.

The unique constraint on (client_id, key) is what decides a race: two requests that both find no
row both insert, and the second insert fails. The caller runs each of these functions in its own
short transaction, so the claim is visible to every other process before the request runs."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from src.models import Client, IdempotencyKey

KEY_LIFETIME = dt.timedelta(hours=24)
# A claim whose request never finished (its process died) frees the key after this long, rather
# than answering 409 for a day.
IN_FLIGHT_LEASE = dt.timedelta(minutes=15)


class ClaimOutcome(enum.Enum):
    claimed = "claimed"
    replay = "replay"
    in_progress = "in_progress"
    mismatch = "mismatch"
    not_stored = "not_stored"
    client_inactive = "client_inactive"


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    row_id: int | None = None
    answer: StoredAnswer | None = None


def claim_key(
    session: Session, *, client_id: str, key: str, request_hash: str, now: dt.datetime
) -> Claim:
    """Claims the key for this request, or tells why it may not run. Raises `IntegrityError` at
    flush when a concurrent request inserted the same key first: call again in a new transaction."""
    active = session.exec(
        select(col(Client.id)).where(col(Client.id) == client_id, col(Client.revoked_at).is_(None))
    ).first()
    if active is None:  # a revoked client's tokens stop working at once, replays included
        return Claim(ClaimOutcome.client_inactive)
    session.execute(
        delete(IdempotencyKey).where(
            col(IdempotencyKey.client_id) == client_id,
            col(IdempotencyKey.key) == key,
            col(IdempotencyKey.expires_at) <= now,
        )
    )
    row = session.exec(
        select(IdempotencyKey).where(
            col(IdempotencyKey.client_id) == client_id, col(IdempotencyKey.key) == key
        )
    ).first()
    if row is None:
        row = IdempotencyKey(
            client_id=client_id,
            key=key,
            request_hash=request_hash,
            expires_at=now + IN_FLIGHT_LEASE,
        )
        session.add(row)
        session.flush()
        return Claim(ClaimOutcome.claimed, row_id=row.id)
    if row.request_hash != request_hash:
        return Claim(ClaimOutcome.mismatch)
    if row.response_status is None:
        return Claim(ClaimOutcome.in_progress)
    if row.response_body is None:
        return Claim(ClaimOutcome.not_stored)
    headers = [(name, value) for name, value in row.response_headers]
    return Claim(
        ClaimOutcome.replay, answer=StoredAnswer(row.response_status, headers, row.response_body)
    )


def complete_key(
    session: Session, *, row_id: int, answer: StoredAnswer | None, status: int, now: dt.datetime
) -> None:
    """Keeps the answer for 24 h; `answer=None` records that the request ran but its answer was
    too large to keep, so a retry is refused instead of running the request twice."""
    session.execute(
        update(IdempotencyKey)
        .where(col(IdempotencyKey.id) == row_id)
        .values(
            response_status=status,
            response_headers=[list(pair) for pair in answer.headers] if answer else [],
            response_body=answer.body if answer else None,
            expires_at=now + KEY_LIFETIME,
        )
    )


def release_key(session: Session, *, row_id: int) -> None:
    """Forgets a claim whose request failed on our side, so the client may retry with the key."""
    session.execute(delete(IdempotencyKey).where(col(IdempotencyKey.id) == row_id))


def prune_expired_keys(session: Session, *, now: dt.datetime) -> int:
    result = session.execute(delete(IdempotencyKey).where(col(IdempotencyKey.expires_at) <= now))
    return int(getattr(result, "rowcount", 0) or 0)

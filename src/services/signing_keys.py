"""ES256 signing keys: the newest unretired key signs; keys retired less than a token lifetime
ago still verify, so rotation never cuts off a live token."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk
from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, select

from src.db import utcnow
from src.ids import new_id
from src.models import SigningKey

ALGORITHM = "ES256"


def _generate() -> SigningKey:
    private_key = ec.generate_private_key(ec.SECP256R1())
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = new_id("key")
    public_jwk = jwk.construct(public_pem, ALGORITHM).to_dict()
    public_jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
    return SigningKey(id=kid, algorithm=ALGORITHM, private_pem=private_pem, public_jwk=public_jwk)


def rotate_keys(session: Session) -> SigningKey:
    """Retire the signing key (it keeps verifying for a token lifetime) and start a new one."""
    now = utcnow()
    for key in session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None))):
        key.retired_at = now
        session.add(key)
    new_key = _generate()
    session.add(new_key)
    session.flush()
    return new_key


def current_signing_key(session: Session) -> SigningKey:
    key = session.exec(
        select(SigningKey)
        .where(col(SigningKey.retired_at).is_(None))
        .order_by(col(SigningKey.created_at).desc())
    ).first()
    return key if key is not None else rotate_keys(session)


def _verifies(token_lifetime_seconds: int) -> ColumnElement[bool]:
    """Unretired, or retired so recently that tokens it signed may still be live."""
    cutoff = utcnow() - dt.timedelta(seconds=token_lifetime_seconds + 300)
    return or_(col(SigningKey.retired_at).is_(None), col(SigningKey.retired_at) > cutoff)


def verification_keys(session: Session, *, token_lifetime_seconds: int) -> list[SigningKey]:
    return list(
        session.exec(
            select(SigningKey)
            .where(_verifies(token_lifetime_seconds))
            .order_by(col(SigningKey.created_at).desc())
        )
    )


def verification_key(
    session: Session, kid: str, *, token_lifetime_seconds: int
) -> SigningKey | None:
    return session.exec(
        select(SigningKey).where(col(SigningKey.id) == kid, _verifies(token_lifetime_seconds))
    ).first()


def jwks(session: Session, *, token_lifetime_seconds: int) -> dict[str, Any]:
    keys = verification_keys(session, token_lifetime_seconds=token_lifetime_seconds)
    return {"keys": [key.public_jwk for key in keys]}

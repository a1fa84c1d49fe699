"""RFC 9068 access tokens: issued as ES256 JWTs, verified per RFC 8725, cached until they expire."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock
from typing import Any

from cachetools import LRUCache
from jose import jwt
from jose.exceptions import JOSEError
from sqlalchemy import Engine
from sqlmodel import Session

from src.config import Settings
from src.db import utcnow
from src.ids import new_id
from src.models import Client
from src.services.errors import Unauthenticated
from src.services.signing_keys import (
    ALGORITHM,
    current_signing_key,
    verification_key,
    verification_keys,
)

TOKEN_TYPE = "at+jwt"
TOKEN_TYPES = (TOKEN_TYPE, "application/" + TOKEN_TYPE)  # RFC 9068 §2.1 allows both spellings
ALL_SUPPLY_CHAINS = "*"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti", "org", "scope")


@dataclass(frozen=True)
class AccessClaims:
    client_id: str
    org_id: str
    scopes: frozenset[str]
    supply_chain_ids: tuple[str, ...]
    expires_at: int
    token_id: str


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


class InvalidScope(ValueError):
    pass


def issue_token(
    session: Session, *, client: Client, requested_scope: str | None, settings: Settings
) -> IssuedToken:
    granted = list(client.scopes)
    if requested_scope:
        wanted = requested_scope.split()
        unknown = [scope for scope in wanted if scope not in granted]
        if unknown:
            raise InvalidScope(f"not granted to this client: {' '.join(unknown)}")
        granted = list(dict.fromkeys(wanted))
    key = current_signing_key(session)
    now = int(utcnow().timestamp())
    scope = " ".join(granted)
    claims = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": client.id,
        "client_id": client.id,
        "org": client.org_id,
        "scope": scope,
        "sc": list(client.supply_chain_ids) or [ALL_SUPPLY_CHAINS],
        "iat": now,
        "nbf": now,
        "exp": now + settings.token_lifetime_seconds,
        "jti": new_id("tok"),
    }
    token = jwt.encode(
        claims, key.private_pem, algorithm=ALGORITHM, headers={"kid": key.id, "typ": TOKEN_TYPE}
    )
    return IssuedToken(token, settings.token_lifetime_seconds, scope)


class TokenVerifier:
    """Checks signatures once per token and remembers the claims until `exp`.

    Revocation is not cached here: callers check the client on every request."""

    KEY_REFRESH_SECONDS = 60
    UNKNOWN_KEY_LOOKUPS_PER_SECOND = 10

    def __init__(
        self, engine: Engine, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._claims: LRUCache[str, AccessClaims] = LRUCache(maxsize=50_000)
        self._keys: dict[str, dict[str, Any]] = {}
        self._keys_loaded_at = 0.0
        self._lookup_window_started_at = float("-inf")
        self._lookups_in_window = 0
        self._lock = Lock()

    def verify(self, token: str) -> AccessClaims:
        with self._lock:  # an LRU read reorders the cache, so even reads take the lock
            cached = self._claims.get(token)
        now = self._clock()
        if cached is not None:
            if cached.expires_at + self._settings.token_leeway_seconds > now:
                return cached
            raise Unauthenticated("The access token has expired.")
        claims = self._decode(token)
        with self._lock:
            self._claims[token] = claims
        return claims

    def _decode(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except JOSEError as exc:
            raise Unauthenticated("The access token is not a JWT.") from exc
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"The access token must be signed with {ALGORITHM}.")
        if str(header.get("typ", "")).lower() not in TOKEN_TYPES:
            raise Unauthenticated(f"The access token must have typ {TOKEN_TYPE}.")
        key = self._key(str(header.get("kid")))
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._settings.token_audience,
                issuer=self._settings.token_issuer,
                options={
                    "require_" + claim: True for claim in ("aud", "iat", "exp", "iss", "sub", "jti")
                }
                | {"leeway": self._settings.token_leeway_seconds},
            )
        except JOSEError as exc:
            raise Unauthenticated(f"The access token is not valid: {exc}.") from exc
        missing = [claim for claim in REQUIRED_CLAIMS if claim not in payload]
        if missing:
            raise Unauthenticated(f"The access token lacks {', '.join(missing)}.")
        if payload["iat"] > self._clock() + self._settings.token_leeway_seconds:
            raise Unauthenticated("The access token was issued in the future.")
        return AccessClaims(
            client_id=str(payload["sub"]),
            org_id=str(payload["org"]),
            scopes=frozenset(str(payload["scope"]).split()),
            supply_chain_ids=tuple(str(chain) for chain in payload.get("sc", [])),
            expires_at=int(payload["exp"]),
            token_id=str(payload["jti"]),
        )

    def _key(self, kid: str) -> dict[str, Any]:
        if self._clock() - self._keys_loaded_at > self.KEY_REFRESH_SECONDS:
            self._reload_keys()
        key = self._keys.get(kid)
        if key is None and self._unknown_key_lookup_allowed():
            # Another process may have rotated since the last load: its new key must verify at
            # once, so an unknown kid costs one lookup by primary key rather than a refusal.
            key = self._load_key(kid)
        if key is None:
            raise Unauthenticated("The access token was signed by an unknown key.")
        return key

    def _unknown_key_lookup_allowed(self) -> bool:
        """At most `UNKNOWN_KEY_LOOKUPS_PER_SECOND` lookups of unknown kids: a kid is read before
        any signature is checked, so tokens naming made-up kids would otherwise cost a database
        read each, in the event loop, before the rate limit refuses them. A few a second leave
        room for keys rotated in by other processes."""
        with self._lock:
            now = self._clock()
            if now - self._lookup_window_started_at >= 1:
                self._lookup_window_started_at, self._lookups_in_window = now, 0
            self._lookups_in_window += 1
            return self._lookups_in_window <= self.UNKNOWN_KEY_LOOKUPS_PER_SECOND

    def _reload_keys(self) -> None:
        lifetime = self._settings.token_lifetime_seconds
        with Session(self._engine) as session:
            keys = verification_keys(session, token_lifetime_seconds=lifetime)
        with self._lock:
            self._keys = {key.id: key.public_jwk for key in keys}
            self._keys_loaded_at = self._clock()

    def _load_key(self, kid: str) -> dict[str, Any] | None:
        lifetime = self._settings.token_lifetime_seconds
        with Session(self._engine) as session:
            key = verification_key(session, kid, token_lifetime_seconds=lifetime)
        if key is None:
            return None
        with self._lock:
            self._keys = self._keys | {key.id: key.public_jwk}
        return key.public_jwk

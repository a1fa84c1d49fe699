"""Access tokens under attack (RFC 8725): every forged, stale or misdirected token is refused with
401 and `WWW-Authenticate: Bearer error="invalid_token"`; rotation keeps live tokens working."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jose import jwk, jwt
from sqlmodel import Session

from src.config import Settings
from src.models import SigningKey
from src.services.clients import NewClient, revoke_client
from src.services.errors import Unauthenticated
from src.services.signing_keys import current_signing_key, rotate_keys
from src.services.tokens import TokenVerifier
from tests.builders import bearer, make_buyer, make_client, token_for
from tests.statements import count_statements

INVALID_TOKEN = 'Bearer error="invalid_token"'


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


@dataclass
class Forge:
    """Signs tokens for a real client with the real signing key, with whatever changes a case
    needs, so that each case differs from a valid token in exactly one respect."""

    settings: Settings
    key: SigningKey
    caller: NewClient

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.settings.token_issuer,
            "aud": self.settings.token_audience,
            "sub": self.caller.client.id,
            "client_id": self.caller.client.id,
            "org": self.caller.client.org_id,
            "scope": "factories:read",
            "sc": ["*"],
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": f"tok_{time.monotonic_ns()}",
        }
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def header(self, **changes: Any) -> dict[str, Any]:
        return {"kid": self.key.id, "typ": "at+jwt"} | changes

    def token(self, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
        return jwt.encode(
            self.claims(**claims), self.key.private_pem, algorithm="ES256", headers=header
            or self.header(),
        )  # fmt: skip

    def signed_by_hand(self, header: dict[str, Any], secret: bytes) -> str:
        """A token with the given header, HMAC-SHA256 signed with `secret`."""
        signing_input = f"{segment(header)}.{segment(self.claims())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(mac)}"

    def public_pem(self) -> bytes:
        pem: bytes = jwk.construct(self.key.public_jwk, "ES256").to_pem()
        return pem


@pytest.fixture
def forge(session: Session, settings: Settings) -> Forge:
    caller = make_client(session, make_buyer(session))
    key = current_signing_key(session)
    session.commit()
    return Forge(settings=settings, key=key, caller=caller)


def me(client: TestClient, token: str) -> Any:
    return client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


def assert_refused(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://weft.dev/problems/invalid-token"
    assert body["status"] == 401
    assert body["instance"] == "/v1/me"


def _alg_none(f: Forge) -> str:
    return f"{segment(f.header(alg='none'))}.{segment(f.claims())}."


def _hs256_with_public_pem(f: Forge) -> str:
    return f.signed_by_hand(f.header(alg="HS256"), f.public_pem())


def _hs256_with_public_jwk(f: Forge) -> str:
    return f.signed_by_hand(f.header(alg="HS256"), json.dumps(f.key.public_jwk).encode())


def _rs256_with_fresh_key(f: Forge) -> str:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return jwt.encode(f.claims(), pem.decode(), algorithm="RS256", headers=f.header())


def _tampered(f: Forge) -> str:
    header, _, signature = f.token().split(".")
    return f"{header}.{segment(f.claims(scope='factories:read admin'))}.{signature}"


NOW = int(time.time())
ATTACKS: dict[str, Callable[[Forge], str]] = {
    "alg none": _alg_none,
    "HS256 keyed with the public key (PEM)": _hs256_with_public_pem,
    "HS256 keyed with the public key (JWK)": _hs256_with_public_jwk,
    "RS256 with a fresh key and a valid kid": _rs256_with_fresh_key,
    "unknown kid": lambda f: f.token(header=f.header(kid="key_unknown")),
    "no kid": lambda f: f.token(header={"typ": "at+jwt"}),
    "no exp": lambda f: f.token(exp=None),
    "no aud": lambda f: f.token(aud=None),
    "no iss": lambda f: f.token(iss=None),
    "no sub": lambda f: f.token(sub=None),
    "no iat": lambda f: f.token(iat=None),
    "expired": lambda f: f.token(iat=NOW - 3600, nbf=NOW - 3600, exp=int(time.time()) - 120),
    "not yet valid": lambda f: f.token(nbf=int(time.time()) + 300),
    "issued in the future": lambda f: f.token(iat=int(time.time()) + 300),
    "wrong aud": lambda f: f.token(aud="another-api"),
    "wrong iss": lambda f: f.token(iss="https://evil.example"),
    "wrong typ": lambda f: f.token(header=f.header(typ="JWT")),
    "no typ": lambda f: f.token(header={"kid": f.key.id}),
    "tampered payload": _tampered,
    "unknown client": lambda f: f.token(sub="cli_unknown"),
    "not a JWT": lambda _: "not-a-token",
}


class TestForgedTokens:
    def test_the_forge_makes_valid_tokens(self, client: TestClient, forge: Forge) -> None:
        """Each attack below changes one thing in this token, which works."""
        response = me(client, forge.token())
        assert response.status_code == 200
        assert response.json()["client_id"] == forge.caller.client.id

    def test_the_long_media_type_is_accepted(self, client: TestClient, forge: Forge) -> None:
        token = forge.token(header=forge.header(typ="application/at+jwt"))
        assert me(client, token).status_code == 200

    @pytest.mark.parametrize("make", ATTACKS.values(), ids=ATTACKS.keys())
    def test_is_refused(
        self, client: TestClient, forge: Forge, make: Callable[[Forge], str]
    ) -> None:
        assert_refused(me(client, make(forge)))

    def test_an_org_claim_other_than_the_clients_is_refused(
        self, client: TestClient, session: Session, forge: Forge
    ) -> None:
        other = make_buyer(session)
        session.commit()
        response = me(client, forge.token(org=other.id))
        assert_refused(response)
        assert response.json()["detail"] == (
            "The access token names another organization than its client's."
        )

    def test_a_missing_token_is_refused_with_a_challenge_naming_no_error(
        self, client: TestClient
    ) -> None:
        response = client.get("/v1/me")
        assert response.status_code == 401
        # RFC 6750 §3.1: no error code when the request carried no credentials
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["type"] == "https://weft.dev/problems/invalid-token"

    def test_another_scheme_is_refused(self, client: TestClient, forge: Forge) -> None:
        response = client.get("/v1/me", headers={"Authorization": f"Basic {forge.token()}"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


class TestRevocation:
    def test_a_revoked_clients_live_token_fails_on_its_next_request(
        self, client: TestClient, session: Session, forge: Forge
    ) -> None:
        token = token_for(client, forge.caller)
        assert me(client, token).status_code == 200  # verified and cached
        revoke_client(session, forge.caller.client.id)
        session.commit()
        response = me(client, token)
        assert_refused(response)
        assert response.json()["detail"] == "The client behind this token has been revoked."

    def test_a_revoked_client_gets_no_new_token(
        self, client: TestClient, session: Session, forge: Forge
    ) -> None:
        revoke_client(session, forge.caller.client.id)
        session.commit()
        response = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(forge.caller.client.id, forge.caller.secret),
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


class TestRotation:
    def test_tokens_of_the_previous_key_keep_working_and_jwks_lists_both(
        self, client: TestClient, session: Session, forge: Forge
    ) -> None:
        before = token_for(client, forge.caller)
        rotate_keys(session)
        session.commit()
        after = token_for(client, forge.caller)
        old_kid = jwt.get_unverified_header(before)["kid"]
        new_kid = jwt.get_unverified_header(after)["kid"]
        assert old_kid != new_kid
        assert me(client, after).status_code == 200
        assert me(client, before).status_code == 200
        kids = [key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]]
        assert kids[0] == new_kid
        assert old_kid in kids

    def test_jwks_publishes_only_public_ec_keys(self, client: TestClient, forge: Forge) -> None:
        keys = client.get("/.well-known/jwks.json").json()["keys"]
        assert forge.key.id in [key["kid"] for key in keys]
        for key in keys:
            assert key["kty"] == "EC"
            assert key["alg"] == "ES256"
            assert key["use"] == "sig"
            assert "d" not in key

    def test_a_key_made_by_another_process_verifies_at_once(
        self, session: Session, settings: Settings, engine: Any, forge: Forge
    ) -> None:
        verifier = TokenVerifier(engine, settings)
        verifier.verify(forge.token())  # loads the keys
        forge.key = rotate_keys(session)
        session.commit()
        claims = verifier.verify(forge.token())
        assert claims.client_id == forge.caller.client.id

    def test_made_up_kids_cost_a_few_key_lookups_a_second_not_one_each(
        self, session: Session, settings: Settings, engine: Any, forge: Forge
    ) -> None:
        now = [time.time()]
        verifier = TokenVerifier(engine, settings, clock=lambda: now[0])
        verifier.verify(forge.token())  # loads the keys
        with count_statements(engine) as statements:
            for n in range(100):
                with pytest.raises(Unauthenticated, match="unknown key"):
                    verifier.verify(forge.token(header=forge.header(kid=f"key_made_up_{n}")))
        assert len(statements) == TokenVerifier.UNKNOWN_KEY_LOOKUPS_PER_SECOND
        now[0] += 1
        forge.key = rotate_keys(session)
        session.commit()
        assert verifier.verify(forge.token()).client_id == forge.caller.client.id


class TestClaimCache:
    def test_a_cached_token_still_expires(
        self, settings: Settings, engine: Any, forge: Forge
    ) -> None:
        now = [time.time()]
        verifier = TokenVerifier(engine, settings, clock=lambda: now[0])
        token = forge.token(exp=int(now[0]) + 60)
        assert verifier.verify(token).client_id == forge.caller.client.id
        now[0] += 60 + settings.token_leeway_seconds + 1
        with pytest.raises(Unauthenticated, match="expired"):
            verifier.verify(token)


class TestScopes:
    def test_a_route_needing_a_scope_the_token_lacks_is_403(
        self, client: TestClient, forge: Forge
    ) -> None:
        headers = bearer(client, forge.caller, scope="compliance:read")
        response = client.get("/v1/supply-chains", headers=headers)
        assert response.status_code == 403
        assert response.json()["type"] == "https://weft.dev/problems/insufficient-scope"
        assert response.json()["detail"] == "This call needs the factories:read scope."
        assert response.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'

    def test_an_admin_scope_outside_the_programme_grants_nothing(
        self, client: TestClient, forge: Forge
    ) -> None:
        token = forge.token(scope="factories:read admin")
        response = client.get("/v1/organizations", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403
        assert response.json()["detail"] == "This call needs the admin scope."

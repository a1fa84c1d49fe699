"""`POST /oauth/token` (RFC 6749 client credentials) and the JWKS, including a real OAuth2 client
library against a real server."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import Engine
from sqlmodel import Session

from src.config import Settings
from src.main import create_app
from src.services.clients import NewClient
from tests.builders import make_buyer, make_client

TOKEN = "/oauth/token"
GRANT = {"grant_type": "client_credentials"}


@pytest.fixture
def caller(session: Session) -> NewClient:
    created = make_client(
        session, make_buyer(session), scopes=["factories:read", "compliance:read"]
    )
    session.commit()
    return created


def basic(caller: NewClient) -> tuple[str, str]:
    return caller.client.id, caller.secret


def assert_oauth_error(response: Any, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error
    assert isinstance(response.json()["error_description"], str)


class TestGrant:
    def test_client_secret_basic(self, client: TestClient, caller: NewClient) -> None:
        response = client.post(TOKEN, data=GRANT, auth=basic(caller))
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 900
        assert body["scope"] == "factories:read compliance:read"

    def test_client_secret_post(self, client: TestClient, caller: NewClient) -> None:
        response = client.post(
            TOKEN,
            data=GRANT | {"client_id": caller.client.id, "client_secret": caller.secret},
        )
        assert response.status_code == 200
        assert response.json()["scope"] == "factories:read compliance:read"

    def test_the_token_carries_the_rfc_9068_claims(
        self, client: TestClient, settings: Settings, caller: NewClient
    ) -> None:
        token = client.post(TOKEN, data=GRANT, auth=basic(caller)).json()["access_token"]
        header = jwt.get_unverified_header(token)
        claims = jwt.get_unverified_claims(token)
        assert header["alg"] == "ES256"
        assert header["typ"] == "at+jwt"
        assert header["kid"].startswith("key_")
        assert claims["iss"] == settings.token_issuer
        assert claims["aud"] == settings.token_audience
        assert claims["sub"] == caller.client.id
        assert claims["client_id"] == caller.client.id
        assert claims["org"] == caller.client.org_id
        assert claims["sc"] == ["*"]
        assert claims["exp"] - claims["iat"] == 900
        assert claims["nbf"] == claims["iat"]
        assert claims["jti"].startswith("tok_")

    def test_a_scope_subset_is_granted(self, client: TestClient, caller: NewClient) -> None:
        response = client.post(TOKEN, data=GRANT | {"scope": "compliance:read"}, auth=basic(caller))
        assert response.status_code == 200
        assert response.json()["scope"] == "compliance:read"
        claims = jwt.get_unverified_claims(response.json()["access_token"])
        assert claims["scope"] == "compliance:read"

    def test_a_scope_the_client_lacks_is_invalid_scope(
        self, client: TestClient, caller: NewClient
    ) -> None:
        response = client.post(
            TOKEN, data=GRANT | {"scope": "factories:read admin"}, auth=basic(caller)
        )
        assert_oauth_error(response, 400, "invalid_scope")
        assert response.json()["error_description"] == "not granted to this client: admin"

    def test_another_grant_type_is_unsupported(self, client: TestClient, caller: NewClient) -> None:
        response = client.post(TOKEN, data={"grant_type": "password"}, auth=basic(caller))
        assert_oauth_error(response, 400, "unsupported_grant_type")

    def test_a_missing_grant_type_is_invalid_request(
        self, client: TestClient, caller: NewClient
    ) -> None:
        assert_oauth_error(client.post(TOKEN, data={}, auth=basic(caller)), 400, "invalid_request")

    @pytest.mark.parametrize(
        ("content", "content_type", "description"),
        [
            (
                b'{"grant_type": "client_credentials"}',
                "application/json",
                "Send the parameters as application/x-www-form-urlencoded (RFC 6749, section 4.4.2).",
            ),
            (
                b"grant_type=client_credentials",
                "multipart/form-data",
                "Send the parameters as application/x-www-form-urlencoded (RFC 6749, section 4.4.2).",
            ),
            (
                b"grant_type=client_credentials&scope=a&scope=b",
                "application/x-www-form-urlencoded",
                "Parameters sent more than once: scope.",
            ),
            (
                b"grant_type=client_credentials&scope=\xff",
                "application/x-www-form-urlencoded",
                "The body is not UTF-8.",
            ),
        ],
        ids=["json", "multipart without boundary", "repeated parameter", "not utf-8"],
    )
    def test_an_unreadable_body_is_invalid_request(
        self,
        client: TestClient,
        caller: NewClient,
        content: bytes,
        content_type: str,
        description: str,
    ) -> None:
        response = client.post(
            TOKEN, content=content, headers={"content-type": content_type}, auth=basic(caller)
        )
        assert_oauth_error(response, 400, "invalid_request")
        assert response.json()["error_description"] == description

    def test_an_empty_parameter_counts_as_omitted(
        self, client: TestClient, caller: NewClient
    ) -> None:
        response = client.post(TOKEN, data=GRANT | {"scope": ""}, auth=basic(caller))
        assert response.json()["scope"] == "factories:read compliance:read"

    def test_two_authentication_methods_are_invalid_request(
        self, client: TestClient, caller: NewClient
    ) -> None:
        response = client.post(
            TOKEN,
            data=GRANT | {"client_id": caller.client.id, "client_secret": caller.secret},
            auth=basic(caller),
        )
        assert_oauth_error(response, 400, "invalid_request")


class TestInvalidClient:
    @pytest.mark.parametrize(
        "credentials",
        [
            {"auth": ("cli_nobody", "wsec_x")},
            {"auth": "wrong secret"},
            {"data": {"client_secret": "wsec_x"}},
            {},
        ],
        ids=["unknown client", "wrong secret", "secret without client id", "no credentials"],
    )
    def test_is_401_with_www_authenticate(
        self, client: TestClient, caller: NewClient, credentials: dict[str, Any]
    ) -> None:
        auth = credentials.get("auth")
        if auth == "wrong secret":
            auth = (caller.client.id, caller.secret + "x")
        response = client.post(TOKEN, data=GRANT | credentials.get("data", {}), auth=auth)
        assert_oauth_error(response, 401, "invalid_client")
        assert response.headers["www-authenticate"] == 'Basic realm="weft"'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def live_server(settings: Settings, engine: Engine) -> Iterator[str]:
    """The app on a real uvicorn server on a free loopback port."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings, engine=engine), host="127.0.0.1", port=port, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_credentials_against_a_real_server(
    live_server: str, caller: NewClient, method: str
) -> None:
    with warnings.catch_warnings():
        # Authlib warns (through an "always" filter it installs) that it prefers httpx2.
        from authlib.deprecate import AuthlibDeprecationWarning

        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import OAuth2Client

    with OAuth2Client(
        client_id=caller.client.id,
        client_secret=caller.secret,
        token_endpoint_auth_method=method,
        scope="factories:read",
    ) as oauth:
        token = oauth.fetch_token(f"{live_server}{TOKEN}", grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "factories:read"
        response = oauth.get(f"{live_server}/v1/me")
    assert response.status_code == 200
    assert response.json()["client_id"] == caller.client.id
    assert response.json()["scopes"] == ["factories:read"]

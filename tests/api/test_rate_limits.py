"""Rate limits per client (draft-ietf-httpapi-ratelimit-headers): every answer says the policy and
what is left, a spent budget answers 429 with `Retry-After`, clients do not share budgets, the
token endpoint has its own per client id, and with Redis several API processes share one."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from src.config import Settings
from src.main import create_app
from tests.builders import bearer, make_programme_client

PROBLEM = "application/problem+json"
REDIS_URL = "redis://127.0.0.1:6379/0"
_RATE_LIMIT = re.compile(r'^"(?P<policy>[a-z]+)";r=(?P<remaining>\d+);t=(?P<reset>\d+)$')


def remaining(response: Any, policy: str = "default") -> int:
    match = _RATE_LIMIT.match(response.headers["ratelimit"])
    assert match is not None, response.headers["ratelimit"]
    assert match["policy"] == policy
    assert 0 <= int(match["reset"]) <= 60
    return int(match["remaining"])


@contextmanager
def limited(settings: Settings, engine: Engine, **overrides: Any) -> Iterator[TestClient]:
    """A test-local app whose settings differ from the suite's only by `overrides`."""
    app = create_app(settings.model_copy(update=overrides), engine=engine)
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http


class TestHeaders:
    def test_every_answer_carries_the_policy_and_a_decrementing_remainder(
        self, client: TestClient, session: Session
    ) -> None:
        credentials = make_programme_client(session)
        session.commit()
        headers = bearer(client, credentials)
        first = client.get("/v1/me", headers=headers)
        second = client.get("/v1/me", headers=headers)
        missing = client.get("/v1/no-such-thing", headers=headers)

        assert first.status_code == 200
        assert first.headers["ratelimit-policy"] == '"default";q=600;w=60'
        assert remaining(first) == 599
        assert remaining(second) == 598
        assert missing.status_code == 404
        assert remaining(missing) == 597

    def test_operational_and_documentation_paths_tell_the_budget_and_are_not_limited(
        self, settings: Settings, engine: Engine
    ) -> None:
        with limited(settings, engine, rate_limit_per_minute=1) as http:
            assert http.get("/v1/no-such-thing").status_code == 404  # spends the one request
            for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs") * 2:
                response = http.get(path)
                assert response.status_code == 200, path
                assert response.headers["ratelimit-policy"] == '"default";q=1;w=60', path
                assert remaining(response) == 0, path
            assert http.get("/v1/no-such-thing").status_code == 429

    def test_an_unspent_budget_is_told_whole_on_those_paths(
        self, settings: Settings, engine: Engine
    ) -> None:
        with limited(settings, engine, rate_limit_per_minute=5) as http:
            for _ in range(2):
                response = http.get("/healthz")
                assert remaining(response) == 5
                assert response.headers["ratelimit"].endswith(";t=60")


class TestBudget:
    def test_a_spent_budget_answers_429_with_retry_after(
        self, settings: Settings, engine: Engine, session: Session
    ) -> None:
        credentials = make_programme_client(session)
        session.commit()
        with limited(settings, engine, rate_limit_per_minute=3) as http:
            headers = bearer(http, credentials)
            answers = [http.get("/v1/me", headers=headers) for _ in range(4)]

        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [remaining(a) for a in answers] == [2, 1, 0, 0]
        refused = answers[-1]
        assert refused.headers["content-type"] == PROBLEM
        assert refused.headers["ratelimit-policy"] == '"default";q=3;w=60'
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert refused.json() == {
            "type": "https://weft.dev/problems/rate-limited",
            "title": "Too Many Requests",
            "status": 429,
            "detail": f"The default budget of 3 requests per 60 s is spent; retry after "
            f"{retry_after} s.",
            "instance": "/v1/me",
        }
        assert refused.headers["x-request-id"]

    def test_clients_and_anonymous_callers_have_their_own_budgets(
        self, settings: Settings, engine: Engine, session: Session
    ) -> None:
        spender, other = make_programme_client(session), make_programme_client(session)
        session.commit()
        with limited(settings, engine, rate_limit_per_minute=2) as http:
            spender_headers, other_headers = bearer(http, spender), bearer(http, other)
            spent = [http.get("/v1/me", headers=spender_headers).status_code for _ in range(3)]
            fresh = http.get("/v1/me", headers=other_headers)
            anonymous = [http.get("/v1/me").status_code for _ in range(3)]
            forged = http.get("/v1/me", headers={"Authorization": "Bearer forged"})
            still = http.get("/v1/me", headers=other_headers)

        assert spent == [200, 200, 429]
        assert fresh.status_code == 200
        assert remaining(fresh) == 1
        assert anonymous == [401, 401, 429]
        assert forged.status_code == 429  # an invalid token counts against its address
        assert still.status_code == 200
        assert remaining(still) == 0

    def test_a_refused_post_does_not_use_up_its_idempotency_key(
        self, settings: Settings, engine: Engine, session: Session
    ) -> None:
        credentials = make_programme_client(session)
        session.commit()
        body = {"name": "Later", "kind": "buyer"}
        with limited(settings, engine, rate_limit_per_minute=1) as http:
            headers = bearer(http, credentials) | {"Idempotency-Key": "later"}
            http.get("/v1/me", headers=headers)
            refused = http.post("/v1/organizations", json=body, headers=headers)
        with limited(settings, engine) as http:
            accepted = http.post("/v1/organizations", json=body, headers=headers)

        assert refused.status_code == 429
        assert accepted.status_code == 201
        assert "idempotent-replayed" not in accepted.headers


class TestTokenEndpoint:
    def test_the_token_endpoint_is_limited_per_client_id_given(
        self, settings: Settings, engine: Engine, session: Session
    ) -> None:
        one, two = make_programme_client(session), make_programme_client(session)
        session.commit()
        grant = {"grant_type": "client_credentials"}
        with limited(settings, engine, token_rate_limit_per_minute=2) as http:
            basic = [
                http.post("/oauth/token", data=grant, auth=(one.client.id, one.secret))
                for _ in range(2)
            ]
            form = http.post(
                "/oauth/token",
                data=grant | {"client_id": one.client.id, "client_secret": one.secret},
            )
            other = http.post(
                "/oauth/token",
                data=grant | {"client_id": two.client.id, "client_secret": two.secret},
            )
            api = http.get(
                "/v1/me", headers={"Authorization": f"Bearer {other.json()['access_token']}"}
            )

        assert [r.status_code for r in basic] == [200, 200]
        assert basic[0].headers["ratelimit-policy"] == '"token";q=2;w=60'
        assert [remaining(r, "token") for r in basic] == [1, 0]
        assert form.status_code == 429
        assert form.headers["content-type"] == PROBLEM
        assert form.json()["detail"].startswith("The token budget of 2 requests per 60 s")
        assert other.status_code == 200
        assert remaining(other, "token") == 1
        assert api.headers["ratelimit-policy"] == '"default";q=600;w=60'
        assert remaining(api) == 599

    def test_a_client_id_given_from_another_address_has_a_budget_of_its_own(
        self, settings: Settings, engine: Engine, session: Session
    ) -> None:
        credentials = make_programme_client(session)
        session.commit()
        auth = (credentials.client.id, credentials.secret)
        grant = {"grant_type": "client_credentials"}
        app = create_app(
            settings.model_copy(update={"token_rate_limit_per_minute": 1}), engine=engine
        )
        with TestClient(app, client=("203.0.113.7", 4000)) as stranger:
            spent = [stranger.post("/oauth/token", data=grant, auth=auth) for _ in range(2)]
        with TestClient(app, client=("198.51.100.20", 5000)) as owner:
            own = owner.post("/oauth/token", data=grant, auth=auth)
        assert [r.status_code for r in spent] == [200, 429]
        assert own.status_code == 200

    def test_token_requests_without_a_client_id_are_limited_per_address(
        self, settings: Settings, engine: Engine
    ) -> None:
        with limited(settings, engine, token_rate_limit_per_minute=1) as http:
            answers = [
                http.post("/oauth/token", data={"grant_type": "client_credentials"})
                for _ in range(2)
            ]
        assert [r.status_code for r in answers] == [401, 429]


def _redis_or_skip() -> redis.Redis:
    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        connection.ping()
    except redis.ConnectionError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("no Redis on 127.0.0.1:6379 (CI fails here instead)")
    return connection


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    connection = _redis_or_skip()
    prefix = f"weft-test-{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        keys = list(connection.scan_iter(f"{prefix}*"))
        if keys:
            connection.delete(*keys)
        connection.close()


class TestRedis:
    def test_two_app_instances_share_one_budget(
        self, settings: Settings, engine: Engine, session: Session, redis_prefix: str
    ) -> None:
        credentials = make_programme_client(session)
        session.commit()
        shared: dict[str, Any] = {
            "redis_url": REDIS_URL,
            "rate_limit_key_prefix": redis_prefix,
            "rate_limit_per_minute": 3,
        }
        with limited(settings, engine, **shared) as one, limited(settings, engine, **shared) as two:
            headers = bearer(one, credentials)
            answers = [
                one.get("/v1/me", headers=headers),
                two.get("/v1/me", headers=headers),
                one.get("/v1/me", headers=headers),
                two.get("/v1/me", headers=headers),
            ]

        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [remaining(a) for a in answers] == [2, 1, 0, 0]
        assert _redis_or_skip().keys(f"{redis_prefix}*")

    def test_an_unreachable_redis_lets_requests_through(
        self, settings: Settings, engine: Engine, session: Session
    ) -> None:
        credentials = make_programme_client(session)
        session.commit()
        with limited(settings, engine, redis_url="redis://127.0.0.1:1/0") as http:
            response = http.get("/v1/me", headers=bearer(http, credentials))
        assert response.status_code == 200
        assert "ratelimit" not in response.headers

"""`Idempotency-Key` on every POST: the same key and request replay the first answer, another
request under the key is a 422, a retry while the first runs is a 409 (decided by the database
when two arrive together), a 5xx frees the key, and keys live 24 h per client."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select
from starlette.responses import Response

from src.api.deps import PrincipalDep, SessionDep
from src.api.problems import problem_response
from src.config import Settings
from src.db import utcnow
from src.main import create_app
from src.models import IdempotencyKey, Organization
from src.models.organizations import OrgKind
from tests.builders import admin_headers, bearer, make_programme_client
from tests.servers import serving

PROBLEM = "application/problem+json"
ORGS = "/v1/organizations"


def problem(slug: str, title: str, status: int, detail: str, instance: str) -> dict[str, Any]:
    return {
        "type": f"https://weft.dev/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return headers | {"Idempotency-Key": key}


def org_count(session: Session, name: str) -> int:
    session.expire_all()
    return session.exec(
        select(func.count()).select_from(Organization).where(col(Organization.name) == name)
    ).one()


def stored_keys(session: Session) -> list[IdempotencyKey]:
    session.expire_all()
    return list(session.exec(select(IdempotencyKey).order_by(col(IdempotencyKey.id))).all())


class TestReplay:
    def test_the_same_key_and_body_replay_the_first_answer(
        self, client: TestClient, session: Session
    ) -> None:
        headers = keyed(admin_headers(client, session), "order-1")
        body = {"name": "Replayed Retail", "kind": "buyer"}
        first = client.post(ORGS, json=body, headers=headers)
        again = client.post(ORGS, json=body, headers=headers)

        assert first.status_code == 201
        assert "idempotent-replayed" not in first.headers
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["content-type"] == "application/json"
        assert org_count(session, "Replayed Retail") == 1

    def test_a_quoted_key_is_the_same_key(self, client: TestClient, session: Session) -> None:
        headers = admin_headers(client, session)
        body = {"name": "Quoted", "kind": "buyer"}
        first = client.post(ORGS, json=body, headers=keyed(headers, "k-7"))
        again = client.post(ORGS, json=body, headers=keyed(headers, '"k-7"'))
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()

    def test_a_4xx_answer_is_replayed_too(self, client: TestClient, session: Session) -> None:
        headers = keyed(admin_headers(client, session), "bad-body")
        body = {"name": "", "kind": "buyer"}
        first = client.post(ORGS, json=body, headers=headers)
        again = client.post(ORGS, json=body, headers=headers)
        assert first.status_code == 422
        assert again.status_code == 422
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["content-type"] == PROBLEM
        assert again.json() == first.json()

    def test_a_replay_gets_fresh_request_id_and_rate_limit_headers(
        self, client: TestClient, session: Session
    ) -> None:
        headers = keyed(admin_headers(client, session), "fresh")
        body = {"name": "Fresh", "kind": "buyer"}
        first = client.post(ORGS, json=body, headers=headers | {"X-Request-ID": "first"})
        again = client.post(ORGS, json=body, headers=headers | {"X-Request-ID": "second"})
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["x-request-id"] == "second"
        assert again.headers.get_list("x-request-id") == ["second"]
        assert again.headers.get_list("ratelimit") != first.headers.get_list("ratelimit")
        assert len(again.headers.get_list("ratelimit-policy")) == 1

    def test_without_a_key_every_post_runs(self, client: TestClient, session: Session) -> None:
        headers = admin_headers(client, session)
        body = {"name": "Twice", "kind": "buyer"}
        assert client.post(ORGS, json=body, headers=headers).status_code == 201
        assert client.post(ORGS, json=body, headers=headers).status_code == 201
        assert org_count(session, "Twice") == 2
        assert stored_keys(session) == []


class TestMisuse:
    def test_the_same_key_with_another_body_is_a_422(
        self, client: TestClient, session: Session
    ) -> None:
        headers = keyed(admin_headers(client, session), "order-2")
        client.post(ORGS, json={"name": "First", "kind": "buyer"}, headers=headers)
        response = client.post(ORGS, json={"name": "Second", "kind": "buyer"}, headers=headers)
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM
        assert response.json() == problem(
            "idempotency-key-reused",
            "This Idempotency-Key was used for another request",
            422,
            "The key was first used with another method, path or body; use a new key for a "
            "new request.",
            ORGS,
        )
        assert org_count(session, "Second") == 0

    def test_the_same_key_on_another_path_is_a_422(
        self, client: TestClient, session: Session
    ) -> None:
        headers = keyed(admin_headers(client, session), "order-3")
        body = {"name": "Pathed", "kind": "buyer"}
        assert client.post(ORGS, json=body, headers=headers).status_code == 201
        other = client.post("/v1/consents", json=body, headers=headers)
        assert other.status_code == 422
        assert other.json()["type"] == "https://weft.dev/problems/idempotency-key-reused"

    @pytest.mark.parametrize("key", ["x" * 256, '""', "tab\there"])
    def test_a_key_that_is_too_long_or_empty_or_not_ascii_is_a_400(
        self, client: TestClient, session: Session, key: str
    ) -> None:
        response = client.post(
            ORGS,
            json={"name": "Nope", "kind": "buyer"},
            headers=keyed(admin_headers(client, session), key),
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM
        assert response.json() == problem(
            "invalid-idempotency-key",
            "The Idempotency-Key header is not valid",
            400,
            "An Idempotency-Key is 1 to 255 visible ASCII characters (or a quoted string of them).",
            ORGS,
        )
        assert org_count(session, "Nope") == 0

    def test_a_key_of_255_characters_is_accepted(
        self, client: TestClient, session: Session
    ) -> None:
        headers = keyed(admin_headers(client, session), "k" * 255)
        response = client.post(ORGS, json={"name": "Long key", "kind": "buyer"}, headers=headers)
        assert response.status_code == 201
        assert [row.key for row in stored_keys(session)] == ["k" * 255]

    def test_without_a_valid_token_the_route_answers_401_and_nothing_is_kept(
        self, client: TestClient, session: Session
    ) -> None:
        headers = keyed({"Authorization": "Bearer not-a-jwt"}, "anon")
        response = client.post(ORGS, json={"name": "Anon", "kind": "buyer"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["type"] == "https://weft.dev/problems/invalid-token"
        assert stored_keys(session) == []


class TestRevokedClient:
    def test_a_revoked_client_gets_no_replay(self, client: TestClient, session: Session) -> None:
        credentials = make_programme_client(session)
        session.commit()
        headers = keyed(bearer(client, credentials), "before-revocation")
        body = {"name": "Revoked", "kind": "buyer"}
        assert client.post(ORGS, json=body, headers=headers).status_code == 201
        credentials.client.revoked_at = utcnow()
        session.add(credentials.client)
        session.commit()
        again = client.post(ORGS, json=body, headers=headers)
        assert again.status_code == 401
        assert "idempotent-replayed" not in again.headers
        assert again.json()["type"] == "https://weft.dev/problems/invalid-token"


class TestScopeAndLifetime:
    def test_keys_are_per_client(self, client: TestClient, session: Session) -> None:
        one, two = make_programme_client(session), make_programme_client(session)
        session.commit()
        body = {"name": "Per client", "kind": "buyer"}
        first = client.post(ORGS, json=body, headers=keyed(bearer(client, one), "shared"))
        second = client.post(ORGS, json=body, headers=keyed(bearer(client, two), "shared"))
        assert first.status_code == second.status_code == 201
        assert "idempotent-replayed" not in second.headers
        assert first.json()["id"] != second.json()["id"]
        assert {row.client_id for row in stored_keys(session)} == {one.client.id, two.client.id}

    def test_the_answer_is_kept_for_24_hours(self, client: TestClient, session: Session) -> None:
        headers = keyed(admin_headers(client, session), "day")
        before = utcnow()
        client.post(ORGS, json={"name": "Day", "kind": "buyer"}, headers=headers)
        (row,) = stored_keys(session)
        assert row.response_status == 201
        lifetime = row.expires_at - before
        assert dt.timedelta(hours=24) <= lifetime < dt.timedelta(hours=24, seconds=30)

    def test_an_expired_key_is_ignored_and_expired_rows_are_pruned(
        self, settings: Settings, engine: Engine, session: Session
    ) -> None:
        credentials = make_programme_client(session)
        past = utcnow() - dt.timedelta(seconds=1)
        for key in ("old", "other-old"):
            session.add(
                IdempotencyKey(
                    client_id=credentials.client.id,
                    key=key,
                    request_hash="0" * 64,
                    response_status=201,
                    response_body=b"{}",
                    expires_at=past,
                )
            )
        session.commit()
        with TestClient(create_app(settings, engine=engine)) as fresh:  # never pruned yet
            headers = keyed(bearer(fresh, credentials), "old")
            response = fresh.post(ORGS, json={"name": "Reborn", "kind": "buyer"}, headers=headers)
        assert response.status_code == 201
        assert "idempotent-replayed" not in response.headers
        assert [(row.key, row.response_status) for row in stored_keys(session)] == [("old", 201)]


class Thing(BaseModel):
    name: str


@dataclass
class Route:
    """What the test-local routes saw, and the gate that holds the slow one."""

    calls: list[str] = field(default_factory=list)
    claims_seen: list[list[int | None]] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def local_app(settings: Settings, engine: Engine, route: Route) -> FastAPI:
    app = create_app(settings, engine=engine)
    router = APIRouter(prefix="/test")

    @router.post("/slow", status_code=201)
    def create_slowly(session: SessionDep, _: PrincipalDep, body: Thing) -> dict[str, str]:
        with Session(engine) as other:  # another connection sees only committed rows
            route.claims_seen.append(
                [row.response_status for row in other.exec(select(IdempotencyKey)).all()]
            )
        route.calls.append(body.name)
        route.entered.set()
        assert route.release.wait(10)
        org = Organization(name=body.name, kind=OrgKind.buyer)
        session.add(org)
        session.flush()
        return {"id": org.id, "name": org.name}

    @router.post("/flaky", status_code=201)
    def create_flakily(_: PrincipalDep, body: Thing) -> Any:
        route.calls.append(body.name)
        if len(route.calls) == 1:
            return problem_response(
                status=503, slug="down", title="Down", detail="Try again.", instance="/test/flaky"
            )
        return {"name": body.name}

    @router.post("/crash")
    def create_crash(_: PrincipalDep, body: Thing) -> dict[str, str]:
        route.calls.append(body.name)
        raise RuntimeError("boom")

    @router.post("/big", status_code=201)
    def create_big(_: PrincipalDep, body: Thing) -> Response:
        route.calls.append(body.name)
        return Response(b'"' + b"x" * (1024 * 1024) + b'"', 201, media_type="application/json")

    @router.post("/failing-commit", status_code=201)
    def create_failing_commit(session: SessionDep, _: PrincipalDep, body: Thing) -> dict[str, str]:
        route.calls.append(body.name)
        taken = session.exec(select(col(Organization.id))).first()
        session.add(Organization(id=taken, name=body.name, kind=OrgKind.buyer))
        return {"name": body.name}  # the duplicate id fails at commit, after this returns

    app.include_router(router)
    return app


@pytest.fixture
def route() -> Route:
    return Route()


@pytest.fixture
def local(settings: Settings, engine: Engine, route: Route) -> Iterator[TestClient]:
    with TestClient(local_app(settings, engine, route), raise_server_exceptions=False) as http:
        yield http


@pytest.fixture
def token(client: TestClient, session: Session) -> dict[str, str]:
    return admin_headers(client, session)


class TestFailures:
    def test_a_5xx_answer_frees_the_key(
        self, local: TestClient, route: Route, token: dict[str, str], session: Session
    ) -> None:
        headers = keyed(token, "flaky")
        first = local.post("/test/flaky", json={"name": "a"}, headers=headers)
        again = local.post("/test/flaky", json={"name": "a"}, headers=headers)
        assert first.status_code == 503
        assert again.status_code == 201
        assert "idempotent-replayed" not in again.headers
        assert route.calls == ["a", "a"]
        assert [row.response_status for row in stored_keys(session)] == [201]

    def test_an_exception_frees_the_key(
        self, local: TestClient, route: Route, token: dict[str, str], session: Session
    ) -> None:
        headers = keyed(token, "crash")
        first = local.post("/test/crash", json={"name": "a"}, headers=headers)
        again = local.post("/test/crash", json={"name": "a"}, headers=headers)
        assert first.status_code == again.status_code == 500
        assert first.json()["type"] == "https://weft.dev/problems/internal-error"
        assert route.calls == ["a", "a"]
        assert stored_keys(session) == []

    def test_a_failed_commit_is_a_500_not_the_success_the_route_returned(
        self, local: TestClient, route: Route, token: dict[str, str], session: Session
    ) -> None:
        headers = keyed(token, "commit")
        first = local.post("/test/failing-commit", json={"name": "dup"}, headers=headers)
        again = local.post("/test/failing-commit", json={"name": "dup"}, headers=headers)
        assert first.status_code == again.status_code == 500
        assert route.calls == ["dup", "dup"]
        assert stored_keys(session) == []

    def test_an_answer_too_large_to_keep_is_streamed_and_not_run_again(
        self, local: TestClient, route: Route, token: dict[str, str], session: Session
    ) -> None:
        headers = keyed(token, "big")
        first = local.post("/test/big", json={"name": "a"}, headers=headers)
        again = local.post("/test/big", json={"name": "a"}, headers=headers)
        assert first.status_code == 201
        assert len(first.content) == 1024 * 1024 + 2
        assert again.status_code == 409
        assert again.json() == problem(
            "idempotency-answer-not-kept",
            "The request with this Idempotency-Key was processed; its answer was too large to keep",
            409,
            "Answers over 1048576 bytes are not replayed; read the result with a GET.",
            "/test/big",
        )
        assert route.calls == ["a"]
        assert [(row.response_status, row.response_body) for row in stored_keys(session)] == [
            (201, None)
        ]


class TestConcurrency:
    """Against a real uvicorn server, so requests truly overlap."""

    def test_a_retry_while_the_first_runs_is_a_409_then_a_replay(
        self,
        settings: Settings,
        engine: Engine,
        route: Route,
        token: dict[str, str],
        session: Session,
    ) -> None:
        headers = keyed(token, "slow")
        with (
            serving(local_app(settings, engine, route)) as base,
            httpx.Client(base_url=base, timeout=20) as http,
            ThreadPoolExecutor(1) as pool,
        ):
            first = pool.submit(http.post, "/test/slow", json={"name": "Slow"}, headers=headers)
            assert route.entered.wait(10)
            during = http.post("/test/slow", json={"name": "Slow"}, headers=headers)
            route.release.set()
            finished = first.result(timeout=10)
            after = http.post("/test/slow", json={"name": "Slow"}, headers=headers)

        assert route.claims_seen == [[None]]  # the claim was committed before the route ran
        assert during.status_code == 409
        assert during.headers["retry-after"] == "1"
        assert during.json() == problem(
            "idempotency-key-in-use",
            "A request with this Idempotency-Key is still being processed",
            409,
            "Retry after the first request has finished to get its answer.",
            "/test/slow",
        )
        assert finished.status_code == 201
        assert after.status_code == 201
        assert after.headers["idempotent-replayed"] == "true"
        assert after.json() == finished.json()
        assert org_count(session, "Slow") == 1

    def test_simultaneous_requests_with_one_key_run_once(
        self,
        settings: Settings,
        engine: Engine,
        route: Route,
        token: dict[str, str],
        session: Session,
    ) -> None:
        requests = 8
        headers = keyed(token, "race")
        start = threading.Barrier(requests)
        with (
            serving(local_app(settings, engine, route)) as base,
            httpx.Client(
                base_url=base, timeout=20, limits=httpx.Limits(max_connections=requests)
            ) as http,
            ThreadPoolExecutor(requests) as pool,
        ):

            def post() -> httpx.Response:
                start.wait(10)
                return http.post("/test/slow", json={"name": "Race"}, headers=headers)

            futures = [pool.submit(post) for _ in range(requests)]
            # Every loser answers while the winner is held inside the route.
            deadline = time.monotonic() + 15
            while sum(f.done() for f in futures) < requests - 1:
                assert time.monotonic() < deadline, "the losers did not answer"
                time.sleep(0.02)
            losers = [f.result() for f in futures if f.done()]
            route.release.set()
            statuses = sorted(f.result(timeout=10).status_code for f in futures)

        assert [r.status_code for r in losers] == [409] * (requests - 1)
        assert statuses == [201] + [409] * (requests - 1)
        assert route.calls == ["Race"]
        assert org_count(session, "Race") == 1

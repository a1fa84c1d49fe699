"""API fuzzing: schemathesis generates requests for every operation of the app's own
`/openapi.json` (valid and invalid ones) and sends each as the programme, as a buyer and with no
token. Whoever asks, the answer is never a 5xx, conforms to the documented status codes, media
types and schemas, and every error is RFC 9457 problem+json (RFC 6749 JSON on `/oauth/token`).

Derandomised and bounded, so a CI run is repeatable and quick; a failure prints the exact request
to replay."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, create_engine
from sqlmodel import Session, col, select

from src.api.problems import PROBLEM_MEDIA_TYPE
from src.config import Settings
from src.main import create_app
from src.models import RemediationItem
from tests.builders import (
    bearer,
    grant_consent,
    link,
    make_assessment,
    make_buyer,
    make_client,
    make_factory,
    make_programme_client,
    make_supply_chain,
    rate_buyer,
)
from tests.conftest import _empty_tables as empty_tables

MAX_EXAMPLES = 8
ANONYMOUS_MAX_EXAMPLES = 3
PERIOD = "2026H1"
# RFC 6749 §5.2 errors, which OAuth clients parse, rather than problem+json.
OAUTH_ERRORS = {("/oauth/token", 400), ("/oauth/token", 401)}


# A generated path parameter may instead be a stand-in for the n-th real id of its kind, put in
# place just before the call (the data exist only once a test runs). So requests reach visible,
# hidden and consented resources, not only the 404 of an id that never existed.
KNOWN = "known:"
KNOWN_SLOTS = 4


@dataclass(frozen=True)
class World:
    ids: dict[str, list[str]]
    headers: dict[str, dict[str, str]]

    def resolve(self, case: Case) -> None:
        parameters = dict(case.path_parameters or {})
        for name, value in parameters.items():
            real = self.ids.get(name)
            if real and isinstance(value, str) and value.startswith(KNOWN):
                parameters[name] = real[int(value.removeprefix(KNOWN)) % len(real)]
        case.path_parameters = parameters


@pytest.fixture(autouse=True)
def _clean_database() -> None:
    """Replaces the per-test emptying: every operation is fuzzed against one world, built once
    for the module and emptied at its end, as writes pile up the way they do in production."""


@pytest.fixture(scope="module")
def fuzz_app(settings: Settings, engine: Engine) -> FastAPI:
    """The app with rate limits out of reach: thousands of requests a minute are the point here,
    and 429s would hide every other answer (the limits have their own tests)."""
    unlimited = {"rate_limit_per_minute": 10**9, "token_rate_limit_per_minute": 10**9}
    return create_app(settings.model_copy(update=unlimited), engine=engine)


@pytest.fixture(scope="module")
def fuzz_world(fuzz_app: FastAPI, engine: Engine) -> Iterator[World]:
    with Session(engine, expire_on_commit=False) as session, TestClient(fuzz_app) as http:
        world = build_world(session, http)
    yield world
    empty_tables(engine)


def build_world(session: Session, http: TestClient) -> World:
    """A programme client; a buyer with two chains, linked factories (one consenting, one not,
    one in the other chain), assessments with remediation items and ratings; a hidden factory."""
    admin = make_programme_client(session)
    buyer = make_buyer(session)
    chain, other_chain = make_supply_chain(session, buyer), make_supply_chain(session, buyer)
    consenting, silent, elsewhere, hidden = (make_factory(session) for _ in range(4))
    link(session, chain, consenting)
    link(session, chain, silent)
    link(session, other_chain, elsewhere)
    grant_consent(session, consenting, buyer)
    findings = {"CO-MWA-01": False, "OS-MGT-01": False, "OS-MGT-02": True}
    assessments = [make_assessment(session, f, findings) for f in (consenting, silent, hidden)]
    draft = make_assessment(session, consenting, findings, cycle=2, publish=False)
    rate_buyer(session, buyer, [consenting, silent, elsewhere], {"PF-01": 4, "PT-01": 2})
    reader = make_client(session, buyer, supply_chains=[chain, other_chain])
    items = session.exec(select(col(RemediationItem.id))).all()
    session.commit()
    headers = {"admin": bearer(http, admin), "buyer": bearer(http, reader), "anonymous": {}}
    endpoint = http.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "description": "fuzz"},
        headers=headers["buyer"],
    )
    assert endpoint.status_code == 201, endpoint.text
    return World(
        ids={
            "factory_id": [consenting.id, silent.id, elsewhere.id, hidden.id],
            "assessment_id": [a.id for a in assessments] + [draft.id],
            "item_id": list(items),
            "supply_chain_id": [chain.id, other_chain.id],
            "endpoint_id": [endpoint.json()["id"]],
            "period": [PERIOD],
            "org_id": [buyer.id],
        },
        headers=headers,
    )


# The document the app serves, read at collection time from an app that never touches its
# database; the requests go to the test's own app (`app=`), on the test database.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(), engine=create_engine("sqlite://"))
)


@schema.hook
def flatmap_path_parameters(
    _context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    if not path_parameters:
        return st.just(path_parameters)
    stand_ins = [f"{KNOWN}{slot}" for slot in range(KNOWN_SLOTS)]
    return st.fixed_dictionaries(
        {name: st.sampled_from([value, *stand_ins]) for name, value in path_parameters.items()}
    )


def problem_json_errors(_ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx and 5xx is problem+json, but for the RFC 6749 errors of the token endpoint."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    if (case.operation.path, response.status_code) in OAUTH_ERRORS:
        assert content_type == "application/json", content_type
        assert set(response.json()) == {"error", "error_description"}, response.json()
        return None
    assert content_type == PROBLEM_MEDIA_TYPE, f"{response.status_code} came as {content_type!r}"
    body = response.json()
    assert body["status"] == response.status_code, body
    assert {"type", "title", "detail", "instance"} <= set(body), body
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    problem_json_errors,
]


def fuzz(case: Case, app: FastAPI, world: World, role: str) -> None:
    world.resolve(case)
    case.call_and_validate(app=app, headers=world.headers[role], checks=CHECKS)


def bounded(max_examples: int) -> Any:
    """Few examples per operation and no randomness: the same requests on every run."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


@schema.parametrize()
@bounded(MAX_EXAMPLES)
def test_api_as_the_programme(case: Case, fuzz_app: FastAPI, fuzz_world: World) -> None:
    fuzz(case, fuzz_app, fuzz_world, "admin")


@schema.parametrize()
@bounded(MAX_EXAMPLES)
def test_api_as_a_buyer(case: Case, fuzz_app: FastAPI, fuzz_world: World) -> None:
    fuzz(case, fuzz_app, fuzz_world, "buyer")


# Without a token, a secured operation answers 401 whatever its parameters: a few examples each
# show that, and the public operations (token, JWKS, health) get the same few.
@schema.parametrize()
@bounded(ANONYMOUS_MAX_EXAMPLES)
def test_api_without_a_token(case: Case, fuzz_app: FastAPI, fuzz_world: World) -> None:
    fuzz(case, fuzz_app, fuzz_world, "anonymous")


class TestFindings:
    """What the fuzzing found, pinned so that it stays fixed."""

    def test_a_number_is_not_an_updated_since_time(
        self, fuzz_app: FastAPI, fuzz_world: World
    ) -> None:
        with TestClient(fuzz_app) as http:
            response = http.get(
                "/v1/factories",
                params={"updated_since": "0.5"},
                headers=fuzz_world.headers["admin"],
            )
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {
                "in": "query",
                "field": "updated_since",
                "message": "Value error, must be an ISO 8601 date-time, e.g. 2026-01-31T00:00:00Z",
            }
        ]

    def test_text_with_nul_is_a_422_not_a_500(
        self, settings: Settings, fuzz_app: FastAPI, fuzz_world: World
    ) -> None:
        if settings.is_sqlite:
            pytest.skip("SQLite stores U+0000 in text; PostgreSQL refuses it")
        admin = fuzz_world.headers["admin"]
        with TestClient(fuzz_app) as http:
            created = http.post(
                "/v1/factories", json={"name": "Nul\u0000Ltd", "country": "KH"}, headers=admin
            )
            listed = http.get("/v1/factories", params={"supply_chain": "\x00"}, headers=admin)
        for response in (created, listed):
            assert response.status_code == 422
            assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
            assert response.json() == {
                "type": "https://weft.dev/problems/validation-error",
                "title": "The request is not valid",
                "status": 422,
                "detail": "A value in the request cannot be stored: text may not contain U+0000 "
                "characters, and numbers must fit their field.",
                "instance": "/v1/factories",
            }

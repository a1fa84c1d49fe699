"""The OpenAPI document is valid OpenAPI 3.1; every operation has a summary and an id named after
its handler, every `/v1` operation asks for an OAuth2 client-credentials token, every error
answer is documented as problem+json, the rate-limit and idempotency conventions are described
where they apply; and a client generated from it by `openapi-python-client` works against a real
server."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from sqlalchemy import Engine, create_engine
from sqlmodel import Session

from src.api.factories import FactoryQuery
from src.config import Settings
from src.main import create_app
from tests.builders import make_programme_client
from tests.servers import serving

PROBLEM_SCHEMA = {"$ref": "#/components/schemas/ProblemDetails"}
# RFC 6749 errors, which OAuth2 clients parse, are the one exception to problem+json.
OAUTH_ERRORS = {("/oauth/token", "400"), ("/oauth/token", "401")}
NOT_LIMITED = {"/healthz", "/readyz", "/metrics"}
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}

Operation = tuple[str, str, dict[str, Any]]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(Settings(), engine=create_engine("sqlite://"))
    with TestClient(app) as http:
        body: dict[str, Any] = http.get("/openapi.json").json()
    return body


@pytest.fixture(scope="module")
def operations(document: dict[str, Any]) -> list[Operation]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def scopes_of(operation: dict[str, Any]) -> list[str]:
    return [
        scope
        for requirement in operation.get("security", [])
        for scope in requirement.get("OAuth2ClientCredentials", [])
    ]


class TestDocument:
    def test_it_is_valid_openapi_3_1(self, document: dict[str, Any]) -> None:
        assert document["openapi"].startswith("3.1")
        validate(document)

    def test_every_operation_has_a_summary(self, operations: list[Operation]) -> None:
        missing = [(path, method) for path, method, op in operations if not op.get("summary")]
        assert missing == []

    def test_operation_ids_are_the_handler_names_and_unique(
        self, document: dict[str, Any], operations: list[Operation]
    ) -> None:
        ids = [operation["operationId"] for _, _, operation in operations]
        assert len(ids) == len(set(ids))
        assert document["paths"]["/v1/me"]["get"]["operationId"] == "get_me"
        assert document["paths"]["/healthz"]["get"]["operationId"] == "get_health"

    def test_every_v1_operation_needs_an_oauth2_client_credentials_token(
        self, document: dict[str, Any], operations: list[Operation]
    ) -> None:
        scheme = document["components"]["securitySchemes"]["OAuth2ClientCredentials"]
        assert scheme["type"] == "oauth2"
        assert scheme["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"
        unsecured = [
            (path, method)
            for path, method, operation in operations
            if path.startswith("/v1/")
            and [list(r) for r in operation.get("security", [])] != [["OAuth2ClientCredentials"]]
        ]
        assert unsecured == []


class TestProblems:
    def test_every_error_answer_is_problem_json(self, operations: list[Operation]) -> None:
        wrong = [
            (path, method, status)
            for path, method, operation in operations
            for status, response in operation["responses"].items()
            if status[0] in "45"
            and (path, status) not in OAUTH_ERRORS
            and [
                (media_type, body.get("schema"))
                for media_type, body in response.get("content", {}).items()
            ]
            != [("application/problem+json", PROBLEM_SCHEMA)]
        ]
        assert wrong == []

    def test_the_token_endpoint_documents_rfc_6749_errors(self, document: dict[str, Any]) -> None:
        responses = document["paths"]["/oauth/token"]["post"]["responses"]
        for status in ("400", "401"):
            assert responses[status]["content"] == {
                "application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}
            }

    def test_the_problem_schema(self, document: dict[str, Any]) -> None:
        schemas = document["components"]["schemas"]
        assert schemas["ProblemDetails"]["required"] == [
            "type",
            "title",
            "status",
            "detail",
            "instance",
        ]
        assert schemas["ProblemDetails"]["properties"]["errors"]["items"] == {
            "$ref": "#/components/schemas/ProblemFieldError"
        }
        assert "HTTPValidationError" not in schemas

    def test_common_problems_are_documented_where_they_apply(
        self, operations: list[Operation]
    ) -> None:
        missing = []
        for path, method, operation in operations:
            expected = set()
            if operation.get("security"):
                expected.add("401")
            if scopes_of(operation):
                expected.add("403")
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                expected.add("404")
            if "requestBody" in operation:
                expected |= {"413", "422"}
            if path not in NOT_LIMITED:
                expected.add("429")
            missing += [(path, method, s) for s in expected - set(operation["responses"])]
        assert missing == []

    def test_operational_paths_have_no_429(self, document: dict[str, Any]) -> None:
        for path in NOT_LIMITED:
            assert "429" not in document["paths"][path]["get"]["responses"]


class TestConventions:
    def test_every_answer_documents_the_rate_limit_headers(
        self, operations: list[Operation]
    ) -> None:
        for path, _, operation in operations:
            for status, response in operation["responses"].items():
                headers = set(response.get("headers", {}))
                assert {"RateLimit", "RateLimit-Policy"} <= headers, (path, status)
                if status == "429":
                    assert "Retry-After" in headers

    def test_the_self_served_page_documents_its_query_as_fastapi_would(
        self, document: dict[str, Any]
    ) -> None:
        def declared(query: Annotated[FactoryQuery, Query()]) -> None:
            """A route that has FastAPI validate the same query model."""

        reference = FastAPI()
        reference.get("/declared")(declared)
        expected = reference.openapi()["paths"]["/declared"]["get"]["parameters"]
        listed = document["paths"]["/v1/factories"]["get"]
        assert listed["parameters"] == expected
        assert listed["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Page_FactoryRead_"
        }

    def test_authenticated_posts_take_an_idempotency_key(
        self, document: dict[str, Any], operations: list[Operation]
    ) -> None:
        key = {"$ref": "#/components/parameters/IdempotencyKey"}
        posts = [
            (path, operation)
            for path, method, operation in operations
            if method == "post" and operation.get("security")
        ]
        assert posts
        for path, operation in posts:
            assert key in operation["parameters"], path
            assert {"400", "409", "422"} <= set(operation["responses"]), path
            assert "Idempotency-Key" in operation["responses"]["409"]["description"], path
        parameter = document["components"]["parameters"]["IdempotencyKey"]
        assert (parameter["name"], parameter["in"], parameter["required"]) == (
            "Idempotency-Key",
            "header",
            False,
        )
        assert parameter["schema"]["maxLength"] == 255
        token = document["paths"]["/oauth/token"]["post"]
        assert key not in token.get("parameters", [])


@pytest.fixture
def generated_client(tmp_path: Path, document: dict[str, Any]) -> Iterator[Any]:
    """The package `openapi-python-client` generates from the document, imported."""
    spec = tmp_path / "openapi.json"
    spec.write_text(httpx.Response(200, json=document).text)
    config = tmp_path / "config.yml"
    config.write_text("post_hooks: []\npackage_name_override: weft_client\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(tmp_path / "weft_client"),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in (result.stdout + result.stderr).lower(), result.stdout
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("weft_client")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == "weft_client"]:
            del sys.modules[name]


@pytest.mark.codegen
def test_a_generated_client_works_against_a_real_server(
    generated_client: Any, settings: Settings, engine: Engine, session: Session
) -> None:
    credentials = make_programme_client(session)
    session.commit()
    get_me = importlib.import_module("weft_client.api.me.get_me")
    get_health = importlib.import_module("weft_client.api.operations.get_health")
    create_organization = importlib.import_module(
        "weft_client.api.organizations.create_organization"
    )
    models = importlib.import_module("weft_client.models")

    with serving(create_app(settings, engine=engine)) as base:
        token = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(credentials.client.id, credentials.secret),
        ).json()["access_token"]
        with (
            generated_client.AuthenticatedClient(base_url=base, token=token) as client,
            generated_client.AuthenticatedClient(base_url=base, token="not-a-token") as stranger,
            generated_client.Client(base_url=base) as anonymous,
        ):
            me = get_me.sync_detailed(client=client)
            refused = get_me.sync_detailed(client=stranger)
            health = get_health.sync(client=anonymous)
            body = models.OrganizationCreate(name="Generated", kind=models.OrgKind.BUYER)
            created = create_organization.sync_detailed(
                client=client, body=body, idempotency_key="generated-1"
            )
            replayed = create_organization.sync_detailed(
                client=client, body=body, idempotency_key="generated-1"
            )

    assert me.status_code == 200
    assert isinstance(me.parsed, models.MeRead)
    assert me.parsed.client_id == credentials.client.id
    assert "admin" in me.parsed.scopes
    assert me.headers["ratelimit-policy"] == '"default";q=600;w=60'
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.ProblemDetails)
    assert refused.parsed.type_ == "https://weft.dev/problems/invalid-token"
    assert health.to_dict() == {"status": "ok"}
    assert created.status_code == 201
    assert isinstance(created.parsed, models.OrganizationDetail)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.parsed.id == created.parsed.id

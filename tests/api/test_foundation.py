"""The HTTP foundation: problem+json for every error, request ids, health and readiness."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from src.models import Factory
from tests.builders import admin_headers

PROBLEM = "application/problem+json"


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


class TestProblemDetails:
    def test_unknown_route_is_a_404_problem(self, client: TestClient) -> None:
        response = client.get("/v1/no-such-thing")
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json() == {
            "type": "https://weft.dev/problems/not-found",
            "title": "Not Found",
            "status": 404,
            "detail": "No resource at /v1/no-such-thing.",
            "instance": "/v1/no-such-thing",
        }

    def test_wrong_method_is_a_405_problem(self, client: TestClient) -> None:
        response = client.delete("/healthz")
        assert response.status_code == 405
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"].endswith("/method-not-allowed")

    def test_malformed_json_is_a_400_problem(self, client: TestClient) -> None:
        response = client.post(
            "/v1/factories", content=b'{"name": ', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "https://weft.dev/problems/malformed-json"
        assert response.json()["detail"].startswith("Malformed JSON")

    def test_oversized_body_is_a_413_problem(self, client: TestClient) -> None:
        response = client.post(
            "/oauth/token",
            content=b"x" * (10 * 1024 * 1024 + 1),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM
        assert "at most 10485760 bytes" in response.json()["detail"]

    def test_streamed_oversized_body_is_a_413_problem(self, client: TestClient) -> None:
        def chunks():  # no Content-Length: the limit must count streamed bytes
            for _ in range(11):
                yield b"x" * (1024 * 1024)

        response = client.post(
            "/oauth/token",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM


class TestRequestId:
    def test_a_given_request_id_is_echoed(self, client: TestClient) -> None:
        response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"

    def test_a_request_id_is_made_when_missing_or_unsafe(self, client: TestClient) -> None:
        response = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
        assert len(response.headers["x-request-id"]) == 32


class TestHealth:
    def test_healthz(self, client: TestClient) -> None:
        assert client.get("/healthz").json() == {"status": "ok"}

    def test_readyz_when_migrated(self, client: TestClient) -> None:
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready"}

    def test_metrics_count_answers_and_their_durations_per_route(self, client: TestClient) -> None:
        before = _samples(client)
        client.get("/healthz")
        client.get("/healthz")
        client.get("/v1/no-such-thing")
        after = _samples(client)

        def added(name: str, **labels: str) -> float:
            key = (name, tuple(sorted(labels.items())))
            return after.get(key, 0.0) - before.get(key, 0.0)

        health = {"method": "GET", "route": "/healthz"}
        assert added("weft_http_requests_total", **health, status="200") == 2
        assert added("weft_http_requests_total", method="GET", route="unmatched", status="404") == 1
        assert added("weft_http_request_duration_seconds_count", **health) == 2
        assert added("weft_http_request_duration_seconds_bucket", **health, le="+Inf") == 2
        # A health check answers well within 10 s, so it sits in every finite bucket from there.
        assert added("weft_http_request_duration_seconds_bucket", **health, le="10.0") == 2
        assert added("weft_http_request_duration_seconds_sum", **health) > 0

    def test_docs_are_served_without_a_cdn(self, client: TestClient) -> None:
        page = client.get("/docs").text
        assert "/docs-assets/swagger-ui-bundle.js" in page
        assert "cdn" not in page.lower()
        assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200

    def test_openapi_is_3_1(self, client: TestClient) -> None:
        assert client.get("/openapi.json").json()["openapi"].startswith("3.1")


class TestConditionalGet:
    def test_a_json_get_has_an_etag_and_if_none_match_answers_304(self, client: TestClient) -> None:
        first = client.get("/healthz")
        etag = first.headers["etag"]
        assert etag.startswith('"')
        again = client.get("/healthz", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag

    def test_a_stale_etag_gets_the_full_answer(self, client: TestClient) -> None:
        response = client.get("/healthz", headers={"If-None-Match": '"stale"'})
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


class TestTransactionPerRequest:
    def test_a_write_is_committed_before_its_answer_starts(
        self, app: FastAPI, client: TestClient, session: Session, engine: Engine
    ) -> None:
        """Called as a server would call it: by the time the status line goes out, another
        connection already sees the row (else a crash or a failed commit could follow a 201)."""
        authorization = admin_headers(client, session)["Authorization"].encode()
        body = json.dumps({"name": "Committed First", "country": "VN"}).encode()
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/v1/factories", "raw_path": b"/v1/factories",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "headers": [
                (b"host", b"testserver"), (b"authorization", authorization),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }  # fmt: skip
        seen: dict[str, object] = {}

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                with Session(engine) as other:
                    seen["stored"] = other.exec(
                        select(Factory.id).where(col(Factory.name) == "Committed First")
                    ).first()

        asyncio.run(app(scope, receive, send))
        assert seen["status"] == 201
        assert seen["stored"] is not None


class TestLongLivedObjects:
    def test_what_the_app_holds_once_started_is_left_out_of_full_collections(
        self, app: FastAPI
    ) -> None:
        def collected(thing: object) -> bool:
            return any(tracked is thing for tracked in gc.get_objects())

        routes = app.router.routes
        assert collected(routes)
        with TestClient(app):
            made_since: list[object] = []
            assert not collected(routes)
            assert collected(made_since)
        assert collected(routes)

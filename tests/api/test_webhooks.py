"""`/v1/webhook-endpoints`: registration, ownership, secrets, test pings, delivery log, retries."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session
from standardwebhooks import Webhook

from src.config import Settings
from src.db import transaction, utcnow
from src.models import Organization, SupplyChain
from src.services.events import EventType, emit
from src.worker import run_once
from tests.builders import bearer, make_buyer, make_client, make_supply_chain
from tests.receivers import Receiver, Reply, always, in_turn, running_receiver

BASE = "/v1/webhook-endpoints"


@dataclass
class World:
    north: Organization
    chain_a: SupplyChain
    chain_b: SupplyChain
    south_chain: SupplyChain
    north_headers: dict[str, str]
    chain_a_headers: dict[str, str]
    south_headers: dict[str, str]
    reader_headers: dict[str, str]


@pytest.fixture
def world(client: TestClient, session: Session) -> World:
    north, south = make_buyer(session, name="North"), make_buyer(session, name="South")
    chain_a, chain_b = make_supply_chain(session, north), make_supply_chain(session, north)
    south_chain = make_supply_chain(session, south)
    north_client = make_client(session, north)
    chain_a_client = make_client(session, north, supply_chains=[chain_a])
    south_client = make_client(session, south)
    reader = make_client(session, north, scopes=["factories:read"])
    session.commit()
    return World(
        north=north,
        chain_a=chain_a,
        chain_b=chain_b,
        south_chain=south_chain,
        north_headers=bearer(client, north_client),
        chain_a_headers=bearer(client, chain_a_client),
        south_headers=bearer(client, south_client),
        reader_headers=bearer(client, reader),
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def register(
    client: TestClient, headers: dict[str, str], url: str, **fields: Any
) -> dict[str, Any]:
    response = client.post(BASE, json={"url": url, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def deliver(engine: Engine, settings: Settings) -> int:
    return asyncio.run(run_once(engine, settings))


def problem_fields(response: Any) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


class TestRegistration:
    def test_create_answers_the_secret_once(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        response = client.post(
            BASE,
            json={
                "url": receiver.url(),
                "event_types": ["factory.updated", "consent.revoked"],
                "description": "ERP",
            },
            headers=world.north_headers,
        )
        assert response.status_code == 201
        body = response.json()
        assert response.headers["location"] == f"{BASE}/{body['id']}"
        assert body["id"].startswith("whe_")
        assert body["secret"].startswith("whsec_")
        assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) >= 24
        assert {k: body[k] for k in ("url", "event_types", "supply_chain_ids", "enabled")} == {
            "url": receiver.url(),
            "event_types": ["factory.updated", "consent.revoked"],
            "supply_chain_ids": [],
            "enabled": True,
        }
        shown = client.get(f"{BASE}/{body['id']}", headers=world.north_headers)
        assert shown.status_code == 200
        assert "secret" not in shown.json()
        assert shown.json() == {k: v for k, v in body.items() if k != "secret"}

    def test_an_unknown_event_type_is_a_422_on_its_field(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        response = client.post(
            BASE,
            json={"url": receiver.url(), "event_types": ["factory.updated", "factory.exploded"]},
            headers=world.north_headers,
        )
        assert response.status_code == 422
        assert problem_fields(response) == ["event_types.1"]

    def test_another_organisations_supply_chain_is_a_422_on_its_field(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        response = client.post(
            BASE,
            json={
                "url": receiver.url(),
                "supply_chain_ids": [world.chain_a.id, world.south_chain.id],
            },
            headers=world.north_headers,
        )
        assert response.status_code == 422
        assert problem_fields(response) == ["supply_chain_ids.1"]

    def test_an_internal_url_is_a_422_on_url(self, client: TestClient, world: World) -> None:
        response = client.post(
            BASE, json={"url": "http://169.254.169.254/latest"}, headers=world.north_headers
        )
        assert response.status_code == 422
        assert problem_fields(response) == ["url"]
        assert "169.254.169.254" in response.json()["errors"][0]["message"]

    def test_unknown_fields_are_refused(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        response = client.post(
            BASE, json={"url": receiver.url(), "secret": "mine"}, headers=world.north_headers
        )
        assert response.status_code == 422
        assert problem_fields(response) == ["secret"]

    def test_a_token_limited_to_some_chains_registers_only_those(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        body = register(client, world.chain_a_headers, receiver.url())
        assert body["supply_chain_ids"] == [world.chain_a.id]
        response = client.post(
            BASE,
            json={"url": receiver.url(), "supply_chain_ids": [world.chain_b.id]},
            headers=world.chain_a_headers,
        )
        assert response.status_code == 422
        assert problem_fields(response) == ["supply_chain_ids.0"]

    def test_the_webhooks_manage_scope_is_needed(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        response = client.post(BASE, json={"url": receiver.url()}, headers=world.reader_headers)
        assert response.status_code == 403
        assert client.get(BASE, headers=world.reader_headers).status_code == 403


class TestOwnership:
    def test_another_organisations_endpoint_is_404_everywhere(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        endpoint = register(client, world.north_headers, receiver.url())["id"]
        south = world.south_headers
        calls = [
            client.get(f"{BASE}/{endpoint}", headers=south),
            client.patch(f"{BASE}/{endpoint}", json={"description": "x"}, headers=south),
            client.delete(f"{BASE}/{endpoint}", headers=south),
            client.post(f"{BASE}/{endpoint}/rotate-secret", headers=south),
            client.post(f"{BASE}/{endpoint}/test", headers=south),
            client.get(f"{BASE}/{endpoint}/deliveries", headers=south),
            client.post(f"{BASE}/{endpoint}/deliveries/msg_x/retry", headers=south),
            client.post(
                f"{BASE}/{endpoint}/retry-failed", json={"since": "2020-01-01T00:00:00Z"},
                headers=south,
            ),
        ]  # fmt: skip
        assert [c.status_code for c in calls] == [404] * len(calls)
        assert client.get(BASE, headers=south).json()["data"] == []
        assert receiver.requests == []

    def test_the_list_is_paginated(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        ids = [register(client, world.north_headers, receiver.url())["id"] for _ in range(3)]
        first = client.get(BASE, params={"limit": 2}, headers=world.north_headers).json()
        assert [e["id"] for e in first["data"]] == ids[:2]
        assert first["has_more"] is True
        second = client.get(
            BASE, params={"limit": 2, "cursor": first["next_cursor"]}, headers=world.north_headers
        ).json()
        assert [e["id"] for e in second["data"]] == ids[2:]
        assert second["has_more"] is False


class TestChanges:
    def test_patch_changes_only_the_given_fields(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        endpoint = register(client, world.north_headers, receiver.url(), description="old")
        response = client.patch(
            f"{BASE}/{endpoint['id']}",
            json={"event_types": ["consent.granted"], "enabled": False},
            headers=world.north_headers,
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["event_types"], body["enabled"], body["description"]) == (
            ["consent.granted"],
            False,
            "old",
        )
        bad = client.patch(
            f"{BASE}/{endpoint['id']}",
            json={"url": "http://10.0.0.1/"},
            headers=world.north_headers,
        )
        assert bad.status_code == 422
        assert problem_fields(bad) == ["url"]

    def test_delete_removes_the_endpoint(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        endpoint = register(client, world.north_headers, receiver.url())["id"]
        assert (
            client.post(f"{BASE}/{endpoint}/test", headers=world.north_headers).status_code == 200
        )
        response = client.delete(f"{BASE}/{endpoint}", headers=world.north_headers)
        assert response.status_code == 204
        assert client.get(f"{BASE}/{endpoint}", headers=world.north_headers).status_code == 404

    def test_rotation_answers_a_new_secret_and_keeps_the_old_one_signing(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        created = register(client, world.north_headers, receiver.url())
        response = client.post(f"{BASE}/{created['id']}/rotate-secret", headers=world.north_headers)
        assert response.status_code == 200
        rotated = response.json()
        assert rotated["secret"] != created["secret"]
        until = dt.datetime.fromisoformat(rotated["previous_secret_expires_at"])
        assert abs((until - utcnow() - dt.timedelta(hours=24)).total_seconds()) < 60
        ping = client.post(f"{BASE}/{created['id']}/test", headers=world.north_headers)
        assert ping.json()["status"] == "succeeded"
        [request] = receiver.requests
        for secret in (created["secret"], rotated["secret"]):
            body = Webhook(secret).verify(request.body, request.headers)
            assert body["type"] == "webhook.test"


class TestTestPing:
    def test_a_ping_is_sent_at_once_and_its_result_answered(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        created = register(client, world.north_headers, receiver.url())
        response = client.post(f"{BASE}/{created['id']}/test", headers=world.north_headers)
        assert response.status_code == 200
        body = response.json()
        assert (body["status"], body["attempts"], body["event_type"]) == (
            "succeeded",
            1,
            "webhook.test",
        )
        [attempt] = body["history"]
        assert (attempt["attempt"], attempt["response_code"], attempt["response_body"]) == (
            1,
            200,
            "ok",
        )
        assert attempt["duration_ms"] >= 0
        [request] = receiver.requests
        assert request.headers["webhook-id"] == body["id"]
        payload = Webhook(created["secret"]).verify(request.body, request.headers)
        assert payload["data"] == {
            "endpoint_id": created["id"],
            "message": "A test event from Weft.",
        }

    def test_a_failed_ping_shows_the_first_kilobyte_and_is_not_retried(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        with running_receiver(always(Reply(500, b"x" * 3000))) as failing:
            created = register(client, world.north_headers, failing.url())
            body = client.post(f"{BASE}/{created['id']}/test", headers=world.north_headers).json()
            assert deliver(engine, settings) == 0
        assert (body["status"], body["next_attempt_at"], body["last_response_code"]) == (
            "failed",
            None,
            500,
        )
        assert body["history"][0]["response_body"] == "x" * 1024
        assert len(failing.requests) == 1


class TestDeliveryLogAndRetries:
    def test_the_log_lists_deliveries_with_every_attempt(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        with running_receiver(in_turn(Reply(503), Reply(200))) as flaky:
            created = register(client, world.north_headers, flaky.url())
            with transaction(engine) as session:
                emit(session, EventType.scorecard_published, {}, org_id=world.north.id)
            deliver(engine, settings)
        response = client.get(f"{BASE}/{created['id']}/deliveries", headers=world.north_headers)
        assert response.status_code == 200
        [delivery] = response.json()["data"]
        assert (delivery["status"], delivery["attempts"], delivery["event_type"]) == (
            "pending",
            1,
            "scorecard.published",
        )
        assert delivery["next_attempt_at"] is not None
        assert [(a["attempt"], a["response_code"]) for a in delivery["history"]] == [(1, 503)]
        failed = client.get(
            f"{BASE}/{created['id']}/deliveries", params={"status": "failed"},
            headers=world.north_headers,
        )  # fmt: skip
        assert failed.json()["data"] == []

    def test_retrying_one_delivery_sends_it_again_with_the_same_id(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        with running_receiver(in_turn(Reply(500), Reply(200))) as flaky:
            created = register(client, world.north_headers, flaky.url())
            url = f"{BASE}/{created['id']}"
            failed = client.post(f"{url}/test", headers=world.north_headers).json()
            response = client.post(
                f"{url}/deliveries/{failed['id']}/retry", headers=world.north_headers
            )
            assert response.status_code == 202
            assert response.json()["status"] == "pending"
            assert deliver(engine, settings) == 1
            again = client.post(
                f"{url}/deliveries/{failed['id']}/retry", headers=world.north_headers
            )
            missing = client.post(f"{url}/deliveries/msg_nope/retry", headers=world.north_headers)
        assert [r.headers["webhook-id"] for r in flaky.requests] == [failed["id"]] * 2
        [shown] = client.get(f"{url}/deliveries", headers=world.north_headers).json()["data"]
        assert [(a["attempt"], a["response_code"]) for a in shown["history"]] == [
            (1, 500),
            (2, 200),
        ]
        assert (again.status_code, again.json()["type"]) == (
            409,
            "https://weft.dev/problems/conflict",
        )
        assert missing.status_code == 404

    def test_retry_failed_resends_every_failure_since_a_time(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        with running_receiver(in_turn(Reply(500), Reply(500), Reply(200))) as flaky:
            created = register(client, world.north_headers, flaky.url())
            url = f"{BASE}/{created['id']}"
            for _ in range(2):
                assert (
                    client.post(f"{url}/test", headers=world.north_headers).json()["status"]
                    == "failed"
                )
            since = (utcnow() - dt.timedelta(minutes=1)).isoformat()
            response = client.post(
                f"{url}/retry-failed", json={"since": since}, headers=world.north_headers
            )
            assert (response.status_code, response.json()) == (202, {"retried": 2})
            assert deliver(engine, settings) == 2
            future = (utcnow() + dt.timedelta(minutes=1)).isoformat()
            none = client.post(
                f"{url}/retry-failed", json={"since": future}, headers=world.north_headers
            )
        assert none.json() == {"retried": 0}
        assert len(flaky.requests) == 4

    @pytest.mark.parametrize("since", ["2026-01-01T00:00:00", 0, "1767225600"])
    def test_retry_failed_needs_an_iso_time_with_its_offset(
        self, client: TestClient, world: World, receiver: Receiver, since: object
    ) -> None:
        created = register(client, world.north_headers, receiver.url())
        response = client.post(
            f"{BASE}/{created['id']}/retry-failed",
            json={"since": since},
            headers=world.north_headers,
        )
        assert response.status_code == 422
        assert problem_fields(response) == ["since"]

    def test_retrying_on_a_disabled_endpoint_is_a_conflict(
        self, client: TestClient, world: World, receiver: Receiver
    ) -> None:
        created = register(client, world.north_headers, receiver.url(), enabled=False)
        response = client.post(
            f"{BASE}/{created['id']}/retry-failed",
            json={"since": "2020-01-01T00:00:00Z"},
            headers=world.north_headers,
        )
        assert response.status_code == 409

"""`GET /v1/events`: the pull feed, under the same visibility and payload rules as webhooks."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from src.config import Settings
from src.db import transaction, utcnow
from src.models import Event, Factory, Organization
from src.services.event_feed import prune_events
from src.services.events import EventType, emit
from src.worker import run_once
from tests.builders import (
    bearer,
    grant_consent,
    link,
    make_buyer,
    make_client,
    make_factory,
    make_partner,
    make_programme_client,
    make_supply_chain,
    summary_row,
)
from tests.receivers import running_receiver


@dataclass
class World:
    north: Organization
    south: Organization
    shared: Factory
    north_only: Factory
    north_headers: dict[str, str]
    south_headers: dict[str, str]
    admin_headers: dict[str, str]
    no_scope_headers: dict[str, str]


@pytest.fixture
def world(client: TestClient, session: Session) -> World:
    north, south = make_buyer(session, name="North"), make_buyer(session, name="South")
    north_chain, south_chain = make_supply_chain(session, north), make_supply_chain(session, south)
    shared, north_only = make_factory(session), make_factory(session)
    link(session, north_chain, shared)
    link(session, north_chain, north_only)
    link(session, south_chain, shared)
    credentials = [
        make_client(session, north),
        make_client(session, south),
        make_programme_client(session),
        make_client(session, north, scopes=["factories:read"]),
    ]
    session.commit()
    headers = [bearer(client, c) for c in credentials]
    return World(north, south, shared, north_only, *headers)


def processed(engine: Engine, settings: Settings) -> None:
    """Runs the worker as if it had processed the events a few seconds ago, past the settle
    window, so the feed lists them without the test waiting."""
    asyncio.run(run_once(engine, settings, clock=lambda: utcnow() - dt.timedelta(seconds=5)))


def add_events(
    engine: Engine, *events: tuple[EventType, dict[str, Any], dict[str, str]]
) -> list[str]:
    with transaction(engine) as session:
        return [emit(session, type_, data, **about).id for type_, data, about in events]


def fetch_created_at(engine: Engine, event_id: str) -> dt.datetime:
    with Session(engine) as session:
        event = session.get(Event, event_id)
        assert event is not None
        return event.created_at


def feed(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get("/v1/events", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [event["id"] for event in body["data"]]


class TestVisibility:
    def test_each_organisation_reads_only_what_it_may_receive(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        shared, north_only, own, south_own = add_events(
            engine,
            (EventType.factory_updated, {"n": 1}, {"factory_id": world.shared.id}),
            (EventType.factory_updated, {"n": 2}, {"factory_id": world.north_only.id}),
            (EventType.scorecard_published, {"n": 3}, {"org_id": world.north.id}),
            (EventType.scorecard_published, {"n": 4}, {"org_id": world.south.id}),
        )
        processed(engine, settings)
        north = feed(client, world.north_headers)
        assert ids(north) == [shared, north_only, own]
        assert north["data"][0] == {
            "id": shared,
            "type": "factory.updated",
            "created_at": north["data"][0]["created_at"],
            "timestamp": north["data"][0]["created_at"],
            "data": {"n": 1},
        }
        assert ids(feed(client, world.south_headers)) == [shared, south_own]
        assert len(ids(feed(client, world.admin_headers))) == 4

    def test_a_partner_reads_the_link_and_consent_events_of_the_buyers_it_acts_for(
        self, client: TestClient, session: Session, engine: Engine, settings: Settings, world: World
    ) -> None:
        for_north = make_client(session, make_partner(session, world.north))
        session.commit()
        about_north = {"factory_id": world.shared.id, "org_id": world.north.id}
        linked, consented, _, _ = add_events(
            engine,
            (EventType.supply_chain_factory_linked, {"n": 1}, about_north),
            (EventType.consent_granted, {"n": 2}, about_north),
            (EventType.scorecard_published, {"n": 3}, {"org_id": world.north.id}),
            (EventType.supply_chain_factory_linked, {"n": 4}, {
                "factory_id": world.shared.id, "org_id": world.south.id
            }),
        )  # fmt: skip
        processed(engine, settings)
        assert ids(feed(client, bearer(client, for_north))) == [linked, consented]

    def test_full_findings_need_consent_when_read(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        [published] = add_events(
            engine, (EventType.assessment_published, {}, {"factory_id": world.shared.id})
        )
        processed(engine, settings)
        assert ids(feed(client, world.north_headers)) == []
        with transaction(engine) as session:
            grant_consent(session, world.shared, world.north)
        assert ids(feed(client, world.north_headers)) == [published]
        assert ids(feed(client, world.south_headers)) == []

    def test_a_summary_update_carries_the_summary_the_reader_may_see(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        with transaction(engine) as session:
            session.add(
                summary_row(
                    world.shared.id,
                    full_json=orjson.dumps({"disclosure": "full", "findings": 40}),
                    public_json=orjson.dumps({"disclosure": "public"}),
                )
            )
            grant_consent(session, world.shared, world.north)
        add_events(
            engine,
            (EventType.compliance_summary_updated, {"x": 1}, {"factory_id": world.shared.id}),
        )
        processed(engine, settings)
        [north] = feed(client, world.north_headers)["data"]
        [south] = feed(client, world.south_headers)["data"]
        assert north["data"] == {
            "factory_id": world.shared.id,
            "disclosure": "full",
            "summary": {"disclosure": "full", "findings": 40},
        }
        assert south["data"] == {
            "factory_id": world.shared.id,
            "disclosure": "public",
            "summary": {"disclosure": "public"},
        }

    def test_the_events_read_scope_is_needed(self, client: TestClient, world: World) -> None:
        assert client.get("/v1/events", headers=world.no_scope_headers).status_code == 403


class TestCursor:
    def test_pages_follow_the_cursor_and_the_last_cursor_polls_for_newer_events(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        about = {"org_id": world.north.id}
        first = add_events(
            engine, *[(EventType.scorecard_published, {"i": i}, about) for i in range(3)]
        )
        processed(engine, settings)
        page = client.get("/v1/events", params={"limit": 2}, headers=world.north_headers)
        assert ids(page.json()) == first[:2]
        assert page.json()["has_more"] is True
        assert 'rel="next"' in page.headers["link"]
        rest = feed(client, world.north_headers, limit=2, after=page.json()["next_cursor"])
        assert (ids(rest), rest["has_more"]) == (first[2:], False)
        assert rest["next_cursor"] is not None

        assert feed(client, world.north_headers, after=rest["next_cursor"])["data"] == []
        newer = add_events(engine, (EventType.scorecard_published, {"i": 9}, about))
        processed(engine, settings)
        polled = feed(client, world.north_headers, after=rest["next_cursor"])
        assert ids(polled) == newer

    def test_types_filters_the_feed(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        updated, _, own = add_events(
            engine,
            (EventType.factory_updated, {}, {"factory_id": world.shared.id}),
            (EventType.factory_status_changed, {}, {"factory_id": world.shared.id}),
            (EventType.scorecard_published, {}, {"org_id": world.north.id}),
        )
        processed(engine, settings)
        body = feed(client, world.north_headers, types="factory.updated,scorecard.published")
        assert ids(body) == [updated, own]

    def test_a_malformed_cursor_is_a_400(self, client: TestClient, world: World) -> None:
        response = client.get("/v1/events", params={"after": "nope"}, headers=world.north_headers)
        assert response.status_code == 400
        assert response.json()["type"] == "https://weft.dev/problems/invalid-cursor"


class TestOrdering:
    def test_events_appear_once_processed_and_settled(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        add_events(engine, (EventType.scorecard_published, {}, {"org_id": world.north.id}))
        assert feed(client, world.north_headers)["data"] == []
        asyncio.run(run_once(engine, settings))
        assert feed(client, world.north_headers)["data"] == []  # inside the settle window
        with transaction(engine) as session:
            session.execute(update(Event).values(fanned_out_at=utcnow() - dt.timedelta(seconds=2)))
        assert len(feed(client, world.north_headers)["data"]) == 1

    def test_a_late_committing_event_is_not_skipped(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        """An event created before another but committed after it (a long transaction) comes
        after it in the feed instead of behind a cursor that has passed it."""
        about = {"org_id": world.north.id}
        with Session(engine) as slow:
            late = emit(slow, EventType.scorecard_published, {"late": True}, **about)
            late_id = late.id
            [early] = add_events(engine, (EventType.scorecard_published, {}, about))
            assert late.created_at < fetch_created_at(engine, early)
            processed(engine, settings)
            seen = feed(client, world.north_headers)
            assert ids(seen) == [early]
            slow.commit()
        processed(engine, settings)
        assert ids(feed(client, world.north_headers, after=seen["next_cursor"])) == [late_id]


class TestRetention:
    def test_events_are_kept_30_days(self, engine: Engine, world: World) -> None:
        old, recent = add_events(
            engine,
            (EventType.scorecard_published, {}, {"org_id": world.north.id}),
            (EventType.scorecard_published, {}, {"org_id": world.north.id}),
        )
        now = utcnow()
        with transaction(engine) as session:
            for event_id, age in ((old, 31), (recent, 29)):
                session.execute(
                    update(Event)
                    .where(col(Event.id) == event_id)
                    .values(fanned_out_at=now - dt.timedelta(days=age))
                )
        with transaction(engine) as session:
            assert prune_events(session, now=now) == 1
        with Session(engine) as session:
            assert session.exec(select(Event.id)).all() == [recent]


class TestSameAsWebhooks:
    def test_a_feed_item_holds_the_delivered_webhook_body(
        self, client: TestClient, engine: Engine, settings: Settings, world: World
    ) -> None:
        # A handler written for webhooks reads pulled events too: an item has the body's `type`,
        # `timestamp` and `data` as they were delivered.
        with running_receiver() as receiver:
            registered = client.post(
                "/v1/webhook-endpoints", json={"url": receiver.url()}, headers=world.north_headers
            )
            assert registered.status_code == 201, registered.text
            [event_id] = add_events(
                engine, (EventType.factory_updated, {"n": 1}, {"factory_id": world.shared.id})
            )
            processed(engine, settings)
            [delivered] = [orjson.loads(body) for body in receiver.bodies()]
        [item] = [
            item for item in feed(client, world.north_headers)["data"] if item["id"] == event_id
        ]
        assert set(delivered) == {"type", "timestamp", "data"}
        assert {key: item[key] for key in delivered} == delivered

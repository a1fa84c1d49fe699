"""Fan-out and delivery against real receivers: signatures, retries, disabling, and the visibility
rules checked again when each attempt is made."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from standardwebhooks import Webhook, WebhookVerificationError

from src.config import Settings
from src.db import transaction, utcnow
from src.models import (
    Consent,
    Delivery,
    DeliveryAttempt,
    Factory,
    Organization,
    SupplyChain,
    SupplyChainLink,
    WebhookEndpoint,
)
from src.services.delivery import RetryPolicy, claim, fan_out
from src.services.events import EventType, emit
from src.services.webhooks import new_secret
from src.worker import Clock, run_once
from tests.builders import (
    grant_consent,
    link,
    make_buyer,
    make_factory,
    make_partner,
    make_supply_chain,
    summary_row,
)
from tests.receivers import Receiver, Reply, always, in_turn, running_receiver

NO_WAIT = RetryPolicy(delays=(dt.timedelta(0),) * 7, jitter=0)


@dataclass
class World:
    north: Organization
    south: Organization
    north_chain: SupplyChain
    factory: Factory
    north_link: SupplyChainLink


@pytest.fixture
def world(engine: Engine) -> World:
    """North links the factory; South has no link to it."""
    with transaction(engine) as session:
        north, south = make_buyer(session, name="North"), make_buyer(session, name="South")
        chain = make_supply_chain(session, north)
        factory = make_factory(session)
        row = link(session, chain, factory)
        make_supply_chain(session, south)
    return World(north, south, chain, factory, row)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def add_endpoint(engine: Engine, org: Organization, url: str, **fields: Any) -> WebhookEndpoint:
    with transaction(engine) as session:
        endpoint = WebhookEndpoint(org_id=org.id, url=url, secret=new_secret(), **fields)
        session.add(endpoint)
    return endpoint


def emit_now(engine: Engine, type_: EventType, data: dict[str, Any], **about: str) -> str:
    with transaction(engine) as session:
        return emit(session, type_, data, **about).id


def deliver(
    engine: Engine,
    settings: Settings,
    *,
    clock: Clock = utcnow,
    policy: RetryPolicy | None = None,
) -> int:
    return asyncio.run(run_once(engine, settings, clock=clock, policy=policy))


def later(**delta: float) -> Clock:
    return lambda: utcnow() + dt.timedelta(**delta)


def verified(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """Every request the receiver got, each checked with the standardwebhooks package."""
    return [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]


def attempts_of(engine: Engine, delivery_id: str) -> list[DeliveryAttempt]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(col(DeliveryAttempt.id))
            ).all()
        )


def only_delivery(engine: Engine) -> Delivery:
    with Session(engine) as session:
        rows = session.exec(select(Delivery)).all()
        assert len(rows) == 1
        return rows[0]


def fetch(engine: Engine, model: type[Any], key: str) -> Any:
    with Session(engine) as session:
        return session.get(model, key)


class TestSigning:
    def test_a_delivery_verifies_with_the_standardwebhooks_package(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        endpoint = add_endpoint(engine, world.north, receiver.url())
        event_id = emit_now(
            engine,
            EventType.factory_updated,
            {"factory_id": world.factory.id, "changed": ["name"]},
            factory_id=world.factory.id,
        )
        assert deliver(engine, settings) == 1
        [body] = verified(receiver, endpoint.secret)
        delivery = only_delivery(engine)
        assert receiver.requests[0].headers["webhook-id"] == delivery.id
        assert delivery.id.startswith("msg_")
        assert body["type"] == "factory.updated"
        assert body["data"] == {"factory_id": world.factory.id, "changed": ["name"]}
        assert body["timestamp"].endswith("Z")
        assert receiver.requests[0].headers["content-type"] == "application/json"
        assert delivery.status == "succeeded"
        assert delivery.event_id == event_id

    def test_a_tampered_body_does_not_verify(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        endpoint = add_endpoint(engine, world.north, receiver.url())
        emit_now(engine, EventType.scorecard_published, {"period": "2026H1"}, org_id=world.north.id)
        deliver(engine, settings)
        request = receiver.requests[0]
        with pytest.raises(WebhookVerificationError):
            Webhook(endpoint.secret).verify(request.body.replace(b"2026", b"2027"), request.headers)

    def test_after_rotation_both_secrets_verify_for_24_hours_then_only_the_new_one(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        old_secret = new_secret()
        endpoint = add_endpoint(
            engine,
            world.north,
            receiver.url(),
            previous_secret=old_secret,
            previous_secret_expires_at=utcnow() + dt.timedelta(hours=24),
        )
        emit_now(engine, EventType.scorecard_published, {"period": "a"}, org_id=world.north.id)
        deliver(engine, settings)
        assert len(receiver.requests[0].headers["webhook-signature"].split(" ")) == 2
        assert verified(receiver, endpoint.secret) == verified(receiver, old_secret)

        emit_now(engine, EventType.scorecard_published, {"period": "b"}, org_id=world.north.id)
        deliver(engine, settings, clock=later(hours=25))
        last = receiver.requests[-1]
        assert len(last.headers["webhook-signature"].split(" ")) == 1
        assert Webhook(endpoint.secret).verify(last.body, last.headers)["data"] == {"period": "b"}
        with pytest.raises(WebhookVerificationError):
            Webhook(old_secret).verify(last.body, last.headers)


class TestRetries:
    def test_two_failures_then_success_is_one_message_sent_three_times(
        self, engine: Engine, settings: Settings, world: World
    ) -> None:
        script = in_turn(Reply(500, b"boom"), Reply(500, b"boom"), Reply(200, b"thanks"))
        with running_receiver(script) as receiver:
            endpoint = add_endpoint(engine, world.north, receiver.url())
            emit_now(engine, EventType.scorecard_published, {"p": 1}, org_id=world.north.id)
            assert deliver(engine, settings, policy=NO_WAIT) == 3
        ids = {request.headers["webhook-id"] for request in receiver.requests}
        delivery = only_delivery(engine)
        assert ids == {delivery.id}
        assert len(verified(receiver, endpoint.secret)) == 3
        assert (delivery.status, delivery.attempts, delivery.last_response_code) == (
            "succeeded",
            3,
            200,
        )
        log = attempts_of(engine, delivery.id)
        assert [(a.attempt, a.response_code, a.response_body) for a in log] == [
            (1, 500, "boom"),
            (2, 500, "boom"),
            (3, 200, "thanks"),
        ]

    def test_the_schedule_waits_5_seconds_then_5_minutes(
        self, engine: Engine, settings: Settings, world: World
    ) -> None:
        with running_receiver(always(Reply(500))) as receiver:
            add_endpoint(engine, world.north, receiver.url())
            emit_now(engine, EventType.scorecard_published, {}, org_id=world.north.id)
            deliver(engine, settings)
            first = only_delivery(engine)
            assert first.next_attempt_at is not None
            wait = (first.next_attempt_at - first.updated_at).total_seconds()
            assert 4.5 <= wait <= 5.5
            assert deliver(engine, settings) == 0  # not due yet

            assert deliver(engine, settings, clock=later(seconds=6)) == 1
            second = only_delivery(engine)
            assert second.attempts == 2
            assert second.next_attempt_at is not None
            wait = (second.next_attempt_at - second.updated_at).total_seconds()
            assert 270 <= wait <= 330
        assert len(receiver.requests) == 2

    def test_the_last_of_eight_attempts_fails_the_delivery(
        self, engine: Engine, settings: Settings, world: World
    ) -> None:
        with running_receiver(always(Reply(502))) as receiver:
            add_endpoint(engine, world.north, receiver.url())
            emit_now(engine, EventType.scorecard_published, {}, org_id=world.north.id)
            assert deliver(engine, settings, policy=NO_WAIT) == 8
        delivery = only_delivery(engine)
        assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (
            "failed",
            8,
            None,
        )
        assert len(receiver.requests) == 8

    def test_retry_after_on_503_is_honoured(
        self, engine: Engine, settings: Settings, world: World
    ) -> None:
        with running_receiver(always(Reply(503, headers={"retry-after": "120"}))) as receiver:
            add_endpoint(engine, world.north, receiver.url())
            emit_now(engine, EventType.scorecard_published, {}, org_id=world.north.id)
            deliver(engine, settings)
        delivery = only_delivery(engine)
        assert delivery.next_attempt_at is not None
        assert (delivery.next_attempt_at - delivery.updated_at).total_seconds() == 120

    def test_a_receiver_that_hangs_past_the_timeout_is_a_failed_attempt(
        self, engine: Engine, settings: Settings, world: World
    ) -> None:
        quick = settings.model_copy(update={"webhook_timeout_seconds": 0.3})
        with running_receiver(always(Reply(200, delay=1.5))) as receiver:
            add_endpoint(engine, world.north, receiver.url())
            emit_now(engine, EventType.scorecard_published, {}, org_id=world.north.id)
            deliver(engine, quick)
        delivery = only_delivery(engine)
        [attempt] = attempts_of(engine, delivery.id)
        assert (attempt.response_code, attempt.error) == (None, "no answer within 0.3 s")
        assert 250 <= attempt.duration_ms < 1500
        assert delivery.status == "pending"

    def test_a_redirect_is_not_followed(
        self, engine: Engine, settings: Settings, world: World
    ) -> None:
        script = always(Reply(307, headers={"location": "http://127.0.0.1:1/elsewhere"}))
        with running_receiver(script) as receiver:
            add_endpoint(engine, world.north, receiver.url())
            emit_now(engine, EventType.scorecard_published, {}, org_id=world.north.id)
            deliver(engine, settings)
        delivery = only_delivery(engine)
        assert (delivery.status, delivery.last_response_code) == ("pending", 307)
        assert [r.path for r in receiver.requests] == ["/hook"]


class TestDisabling:
    def test_410_disables_the_endpoint_and_tells_the_organisations_other_endpoints(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        with running_receiver(always(Reply(410))) as gone:
            dead = add_endpoint(engine, world.north, gone.url())
            other = add_endpoint(engine, world.north, receiver.url(), event_types=[
                EventType.webhook_endpoint_disabled.value
            ])  # fmt: skip
            south = add_endpoint(engine, world.south, receiver.url("/south"))
            emit_now(engine, EventType.scorecard_published, {}, org_id=world.north.id)
            deliver(engine, settings)
            emit_now(engine, EventType.scorecard_published, {}, org_id=world.north.id)
            deliver(engine, settings)
        assert len(gone.requests) == 1
        endpoint = fetch(engine, WebhookEndpoint, dead.id)
        assert (endpoint.enabled, endpoint.disabled_reason) == (
            False,
            "the endpoint answered 410 Gone",
        )
        [notice] = verified(receiver, other.secret)
        assert notice["type"] == "webhook_endpoint.disabled"
        assert notice["data"] == {
            "endpoint_id": dead.id,
            "url": dead.url,
            "reason": "the endpoint answered 410 Gone",
        }
        assert fetch(engine, WebhookEndpoint, south.id).enabled is True

    def test_an_endpoint_failing_for_5_days_is_disabled(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        with running_receiver(always(Reply(500))) as failing:
            dead = add_endpoint(engine, world.north, failing.url())
            other = add_endpoint(engine, world.north, receiver.url())
            emit_now(engine, EventType.scorecard_published, {}, org_id=world.north.id)
            deliver(engine, settings)
            assert fetch(engine, WebhookEndpoint, dead.id).failing_since is not None
            deliver(engine, settings, clock=later(days=4))
            assert fetch(engine, WebhookEndpoint, dead.id).enabled is True
            deliver(engine, settings, clock=later(days=5, minutes=1))
        endpoint = fetch(engine, WebhookEndpoint, dead.id)
        assert (endpoint.enabled, endpoint.disabled_reason) == (
            False,
            "every delivery failed for 5 days",
        )
        types = [body["type"] for body in verified(receiver, other.secret)]
        assert types == ["scorecard.published", "webhook_endpoint.disabled"]

    def test_a_success_clears_the_failure_clock(
        self, engine: Engine, settings: Settings, world: World
    ) -> None:
        with running_receiver(in_turn(Reply(500), Reply(204))) as flaky:
            endpoint = add_endpoint(engine, world.north, flaky.url())
            emit_now(engine, EventType.scorecard_published, {}, org_id=world.north.id)
            deliver(engine, settings, policy=NO_WAIT)
        assert fetch(engine, WebhookEndpoint, endpoint.id).failing_since is None
        assert only_delivery(engine).status == "succeeded"


def store_summary(engine: Engine, factory: Factory) -> None:
    with transaction(engine) as session:
        session.add(
            summary_row(
                factory.id,
                full_json=orjson.dumps({"disclosure": "full", "critical_issues": ["CL.1"]}),
                public_json=orjson.dumps({"disclosure": "public", "risk_band": "high"}),
            )
        )


class TestVisibility:
    def test_a_factory_event_reaches_only_organisations_that_see_the_factory(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        north = add_endpoint(engine, world.north, receiver.url("/north"))
        add_endpoint(engine, world.south, receiver.url("/south"))
        emit_now(engine, EventType.factory_updated, {}, factory_id=world.factory.id)
        deliver(engine, settings)
        assert [r.path for r in receiver.requests] == ["/north"]
        assert len(verified(receiver, north.secret)) == 1

    def test_an_organisation_event_reaches_only_that_organisation(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        add_endpoint(engine, world.north, receiver.url("/north"))
        add_endpoint(engine, world.south, receiver.url("/south"))
        emit_now(engine, EventType.scorecard_published, {}, org_id=world.south.id)
        deliver(engine, settings)
        assert [r.path for r in receiver.requests] == ["/south"]

    def test_a_partner_receives_the_link_and_consent_events_of_the_buyers_it_acts_for(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        with transaction(engine) as session:
            for_north = make_partner(session, world.north)
            for_south = make_partner(session, world.south)
        endpoint = add_endpoint(engine, for_north, receiver.url("/for-north"))
        add_endpoint(engine, for_south, receiver.url("/for-south"))
        about_north = {"factory_id": world.factory.id, "org_id": world.north.id}
        chain = {"supply_chain_id": world.north_chain.id}
        emit_now(engine, EventType.supply_chain_factory_linked, chain, **about_north)
        emit_now(engine, EventType.consent_granted, {}, **about_north)
        emit_now(engine, EventType.scorecard_published, {}, org_id=world.north.id)
        deliver(engine, settings)
        assert {r.path for r in receiver.requests} == {"/for-north"}
        assert sorted(body["type"] for body in verified(receiver, endpoint.secret)) == [
            "consent.granted",
            "supply_chain.factory_linked",
        ]

    def test_endpoint_filters_on_event_type_and_supply_chain(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        with transaction(engine) as session:
            other_chain = make_supply_chain(session, world.north)
        add_endpoint(engine, world.north, receiver.url("/all"))
        add_endpoint(engine, world.north, receiver.url("/status"), event_types=[
            EventType.factory_status_changed.value
        ])  # fmt: skip
        add_endpoint(
            engine, world.north, receiver.url("/other-chain"), supply_chain_ids=[other_chain.id]
        )
        add_endpoint(
            engine, world.north, receiver.url("/chain"), supply_chain_ids=[world.north_chain.id]
        )
        emit_now(engine, EventType.factory_updated, {}, factory_id=world.factory.id)
        deliver(engine, settings)
        assert sorted(r.path for r in receiver.requests) == ["/all", "/chain"]

    def test_full_findings_need_consent(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        add_endpoint(engine, world.north, receiver.url())
        about = {"factory_id": world.factory.id}
        emit_now(engine, EventType.assessment_published, {"n": 1}, **about)
        emit_now(engine, EventType.remediation_item_updated, {"n": 2}, **about)
        deliver(engine, settings)
        assert receiver.requests == []
        with transaction(engine) as session:
            grant_consent(session, world.factory, world.north)
        emit_now(engine, EventType.assessment_published, {"n": 3}, **about)
        deliver(engine, settings)
        assert [orjson.loads(b)["data"] for b in receiver.bodies()] == [{"n": 3}]

    def test_a_summary_update_carries_the_public_or_full_summary_per_consent(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        add_endpoint(engine, world.north, receiver.url())
        store_summary(engine, world.factory)
        about = {"factory_id": world.factory.id}
        emit_now(engine, EventType.compliance_summary_updated, {"leak": "x"}, **about)
        deliver(engine, settings)
        with transaction(engine) as session:
            grant_consent(session, world.factory, world.north)
        emit_now(engine, EventType.compliance_summary_updated, {}, **about)
        deliver(engine, settings)
        assert [orjson.loads(b)["data"] for b in receiver.bodies()] == [
            {
                "factory_id": world.factory.id,
                "disclosure": "public",
                "summary": {"disclosure": "public", "risk_band": "high"},
            },
            {
                "factory_id": world.factory.id,
                "disclosure": "full",
                "summary": {"disclosure": "full", "critical_issues": ["CL.1"]},
            },
        ]

    def test_an_unlink_between_the_event_and_its_delivery_stops_it(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        add_endpoint(engine, world.north, receiver.url())
        emit_now(engine, EventType.factory_updated, {}, factory_id=world.factory.id)
        with transaction(engine) as session:
            row = session.get(SupplyChainLink, world.north_link.id)
            assert row is not None
            row.ends_on = dt.date.today() - dt.timedelta(days=1)
            session.add(row)
        deliver(engine, settings)
        assert receiver.requests == []

    def test_a_consent_revoked_before_a_retry_drops_the_delivery(
        self, engine: Engine, settings: Settings, world: World
    ) -> None:
        with transaction(engine) as session:
            consent = grant_consent(session, world.factory, world.north)
        with running_receiver(in_turn(Reply(500), Reply(200))) as receiver:
            add_endpoint(engine, world.north, receiver.url())
            emit_now(engine, EventType.assessment_published, {}, factory_id=world.factory.id)
            deliver(engine, settings)
            with transaction(engine) as session:
                row = session.get(Consent, consent.id)
                assert row is not None
                row.revoked_at = utcnow()
                session.add(row)
            deliver(engine, settings, clock=later(seconds=10))
        assert len(receiver.requests) == 1
        delivery = only_delivery(engine)
        assert (delivery.status, delivery.attempts) == ("failed", 2)
        assert [(a.response_code, a.error) for a in attempts_of(engine, delivery.id)] == [
            (500, None),
            (None, "not sent: your organisation may no longer receive it"),
        ]

    def test_a_subscription_that_ended_stops_factory_events(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        with transaction(engine) as session:
            expired = make_buyer(session, active=False)
            link(session, make_supply_chain(session, expired), world.factory)
        add_endpoint(engine, expired, receiver.url())
        emit_now(engine, EventType.factory_updated, {}, factory_id=world.factory.id)
        deliver(engine, settings)
        assert receiver.requests == []


class TestLeases:
    def test_a_leased_delivery_is_not_sent_again_until_its_lease_expires(
        self, engine: Engine, settings: Settings, world: World, receiver: Receiver
    ) -> None:
        add_endpoint(engine, world.north, receiver.url())
        emit_now(engine, EventType.scorecard_published, {}, org_id=world.north.id)
        with transaction(engine) as session:
            fan_out(session, now=utcnow())
            [claimed] = claim(session, now=utcnow(), lease_seconds=60, limit=10)
        assert deliver(engine, settings) == 0
        assert deliver(engine, settings, clock=later(seconds=61)) == 1
        assert [r.headers["webhook-id"] for r in receiver.requests] == [claimed]

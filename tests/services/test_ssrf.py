"""SSRF guard: internal addresses are refused at registration and again at delivery, unless the
operator's allow-list names them; a delivery connects to the address that was checked."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from src.config import Settings
from src.db import transaction
from src.models import Delivery, DeliveryAttempt, WebhookEndpoint
from src.models.organizations import OrgKind
from src.models.webhooks import WebhookEndpointCreate
from src.services.access import Principal
from src.services.errors import InvalidInput
from src.services.events import EventType, emit
from src.services.ssrf import UnsafeDestination, check_address, resolve_destination
from src.services.tokens import ALL_SUPPLY_CHAINS
from src.services.webhooks import create_endpoint, new_secret
from src.worker import run_once
from tests.builders import make_buyer
from tests.receivers import running_receiver

REFUSED_HOSTS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "[::ffff:127.0.0.1]",
    "0.0.0.0",
    "[::]",
    "100.64.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "[fe80::1]",
    "[fc00::1]",
    "[64:ff9b::a00:1]",
]


@pytest.fixture
def strict(settings: Settings) -> Settings:
    """The test settings without the loopback allow-list (http stays allowed for receivers)."""
    return settings.model_copy(update={"webhook_allow_networks": []})


def principal_for(org_id: str) -> Principal:
    return Principal(
        client_id="cli_test",
        org_id=org_id,
        org_kind=OrgKind.buyer,
        scopes=frozenset({"webhooks:manage"}),
        supply_chain_ids=(ALL_SUPPLY_CHAINS,),
    )


class TestAddresses:
    @pytest.mark.parametrize("host", REFUSED_HOSTS)
    def test_an_internal_address_is_refused(self, strict: Settings, host: str) -> None:
        with pytest.raises(UnsafeDestination, match="not a public address"):
            resolve_destination(f"http://{host}/hook", strict)

    def test_a_public_address_is_accepted(self, strict: Settings) -> None:
        destination = resolve_destination("https://93.184.216.34:8443/in?x=1", strict)
        assert destination.connect_url == "https://93.184.216.34:8443/in?x=1"
        assert destination.host_header == "93.184.216.34:8443"

    @pytest.mark.parametrize(
        ("address", "network"),
        [
            ("127.0.0.1", "127.0.0.0/8"),
            ("::1", "::1/128"),
            ("10.0.0.1", "10.0.0.0/8"),
            ("::ffff:10.1.2.3", "10.0.0.0/8"),
            ("169.254.169.254", "169.254.169.254/32"),
        ],
    )
    def test_the_allow_list_lets_an_internal_address_through(
        self, address: str, network: str
    ) -> None:
        check_address(ipaddress.ip_address(address), [ipaddress.ip_network(network)])
        with pytest.raises(UnsafeDestination):
            check_address(ipaddress.ip_address(address), [ipaddress.ip_network("192.0.2.0/24")])

    def test_a_mapped_ipv6_address_is_judged_by_its_ipv4_address(self) -> None:
        with pytest.raises(UnsafeDestination):
            check_address(ipaddress.ip_address("::ffff:169.254.169.254"), [])

    def test_http_needs_the_insecure_setting(self, strict: Settings) -> None:
        secure_only = strict.model_copy(update={"webhook_allow_insecure": False})
        with pytest.raises(UnsafeDestination, match="must be an https:// URL"):
            resolve_destination("http://93.184.216.34/hook", secure_only)

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("ftp://93.184.216.34/", "must be an https:// URL"),
            ("https://user:pw@93.184.216.34/", "must not carry credentials"),
            ("https:///nohost", "has no host"),
            ("https://no-such-host.invalid/", "does not resolve"),
        ],
    )
    def test_malformed_urls_are_refused(self, strict: Settings, url: str, reason: str) -> None:
        with pytest.raises(UnsafeDestination, match=reason):
            resolve_destination(url, strict)

    def test_a_name_is_connected_to_at_its_checked_address_with_its_own_host_header(
        self, settings: Settings
    ) -> None:
        destination = resolve_destination("http://localhost:8123/hook?a=b", settings)
        assert destination.address in {
            ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("::1"),
        }
        assert destination.host_header == "localhost:8123"
        literal = "[::1]" if destination.address.version == 6 else "127.0.0.1"
        assert destination.connect_url == f"http://{literal}:8123/hook?a=b"


class TestRegistration:
    @pytest.mark.parametrize("host", REFUSED_HOSTS)
    def test_an_internal_url_is_refused_on_the_url_field(
        self, session: Session, strict: Settings, host: str
    ) -> None:
        buyer = make_buyer(session)
        with pytest.raises(InvalidInput) as caught:
            create_endpoint(
                session,
                principal=principal_for(buyer.id),
                data=WebhookEndpointCreate(url=f"http://{host}:9/hook"),
                settings=strict,
            )
        assert [error.field for error in caught.value.errors] == ["url"]
        assert "is not a public address" in caught.value.errors[0].message

    def test_the_allow_list_permits_registration(
        self, session: Session, settings: Settings
    ) -> None:
        buyer = make_buyer(session)
        created = create_endpoint(
            session,
            principal=principal_for(buyer.id),
            data=WebhookEndpointCreate(url="http://127.0.0.1:9/hook"),
            settings=settings,
        )
        assert created.url == "http://127.0.0.1:9/hook"


class TestDelivery:
    def test_an_address_that_became_internal_is_refused_at_delivery(
        self, engine: Engine, strict: Settings, settings: Settings
    ) -> None:
        """Registered while allowed (or while DNS pointed elsewhere): the delivery checks again
        and sends nothing; with the allow-list it goes through."""
        with running_receiver() as receiver:
            with transaction(engine) as session:
                buyer = make_buyer(session)
                hosts = ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "10.0.0.1", "0.0.0.0"]
                for host in hosts:
                    session.add(
                        WebhookEndpoint(
                            org_id=buyer.id,
                            url=f"http://{host}:{receiver.port}/hook",
                            secret=new_secret(),
                        )
                    )
                emit(session, EventType.scorecard_published, {"period": "2026H1"}, org_id=buyer.id)
            assert asyncio.run(run_once(engine, strict)) == len(hosts)
            assert receiver.requests == []
            with transaction(engine) as session:
                errors = session.exec(select(DeliveryAttempt.error)).all()
                assert len(errors) == len(hosts)
                assert all(e and e.startswith("refused: the URL resolves to") for e in errors)
                statuses = set(session.exec(select(Delivery.status)).all())
                assert statuses == {"pending"}

            with transaction(engine) as session:
                for delivery in session.exec(select(Delivery)).all():
                    delivery.next_attempt_at = delivery.created_at
                    session.add(delivery)
            asyncio.run(run_once(engine, settings))
            # Only loopback is on the test allow-list: 10.0.0.1 and 0.0.0.0 stay refused.
            assert len(receiver.requests) == 3
            assert {r.headers["host"] for r in receiver.requests} == {
                f"127.0.0.1:{receiver.port}",
                f"localhost:{receiver.port}",
                f"[::ffff:127.0.0.1]:{receiver.port}",
            }

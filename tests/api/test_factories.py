"""`/v1/factories`: visibility, filters, pagination, sync walks, CSV export, programme edits."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from src.db import utcnow
from src.models import Client, Event, Factory, Organization, SupplyChain
from src.models.factories import FactoryUpdate
from src.services.clients import NewClient
from src.services.factories import update_factory
from src.services.pagination import decode_cursor
from tests.builders import (
    bearer,
    link,
    make_assessment,
    make_buyer,
    make_client,
    make_factory,
    make_programme_client,
    make_supply_chain,
)
from tests.statements import count_statements

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def world(session: Session) -> dict[str, object]:
    """Two buyers sharing one factory; a factory nobody links."""
    north, south = make_buyer(session, name="North"), make_buyer(session, name="South")
    north_chain = make_supply_chain(session, north)
    south_chain = make_supply_chain(session, south)
    shared = make_factory(session, name="Shared Knit", country="VN", os_id="VN2020001AAAAAAA")
    north_only = make_factory(session, name="North Denim", country="BD")
    hidden = make_factory(session, name="Hidden Mills", country="KH")
    link(session, north_chain, shared, supplier_code="N-1")
    link(session, north_chain, north_only, supplier_code="N-2")
    link(session, south_chain, shared, supplier_code="S-9")
    world = {
        "north": make_client(session, north, supply_chains=[north_chain]),
        "south": make_client(session, south),
        "admin": make_programme_client(session),
        "shared": shared,
        "north_only": north_only,
        "hidden": hidden,
        "north_chain": north_chain,
    }
    session.commit()
    return world


def buyer_linking(session: Session, factories: int) -> tuple[Organization, SupplyChain]:
    """A buyer with one supply chain linking `factories` new factories."""
    buyer = make_buyer(session)
    chain = make_supply_chain(session, buyer)
    for _ in range(factories):
        link(session, chain, make_factory(session))
    return buyer, chain


def ids(response_json: dict[str, object]) -> set[str]:
    return {item["id"] for item in response_json["data"]}  # type: ignore[index, attr-defined]


class TestVisibility:
    def test_a_buyer_lists_only_factories_in_its_supply_chains(
        self, client: TestClient, world: dict[str, object]
    ) -> None:
        response = client.get("/v1/factories", headers=bearer(client, world["north"]))
        assert response.status_code == 200
        assert ids(response.json()) == {world["shared"].id, world["north_only"].id}
        assert response.json()["has_more"] is False

    def test_the_programme_lists_every_factory(
        self, client: TestClient, world: dict[str, object]
    ) -> None:
        response = client.get("/v1/factories", headers=bearer(client, world["admin"]))
        assert len(response.json()["data"]) == 3

    def test_detail_shows_only_the_callers_own_supplier_codes(
        self, client: TestClient, world: dict[str, object]
    ) -> None:
        shared = world["shared"]
        north = client.get(f"/v1/factories/{shared.id}", headers=bearer(client, world["north"]))
        south = client.get(f"/v1/factories/{shared.id}", headers=bearer(client, world["south"]))
        assert [c["supplier_code"] for c in north.json()["supplier_codes"]] == ["N-1"]
        assert [c["supplier_code"] for c in south.json()["supplier_codes"]] == ["S-9"]
        assert north.json()["os_id"] == "VN2020001AAAAAAA"

    def test_a_hidden_factory_answers_like_a_missing_one(
        self, client: TestClient, world: dict[str, object]
    ) -> None:
        headers = bearer(client, world["south"])
        hidden = client.get(f"/v1/factories/{world['north_only'].id}", headers=headers)
        missing = client.get("/v1/factories/fac_01ZZZZZZZZZZZZZZZZZZZZZZZZ", headers=headers)
        assert hidden.status_code == missing.status_code == 404
        strip = lambda body: {k: v for k, v in body.items() if k not in ("instance", "detail")}  # noqa: E731
        assert strip(hidden.json()) == strip(missing.json())
        assert hidden.json()["detail"].replace(world["north_only"].id, "X") == missing.json()[
            "detail"
        ].replace("fac_01ZZZZZZZZZZZZZZZZZZZZZZZZ", "X")

    def test_reading_needs_the_factories_scope(
        self, client: TestClient, world: dict[str, object]
    ) -> None:
        headers = bearer(client, world["north"], scope="compliance:read")
        response = client.get("/v1/factories", headers=headers)
        assert response.status_code == 403
        assert response.json()["type"].endswith("/insufficient-scope")

    def test_no_token_is_a_401(self, client: TestClient) -> None:
        response = client.get("/v1/factories")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


class TestRevokedClient:
    """The page's statements check the caller's client themselves: a token resolved before is
    refused at once, whichever plan serves its caller."""

    @pytest.mark.parametrize(
        ("who", "query"),
        [
            ("named", "limit=1"),  # its token's chain walked in page order
            ("named", "limit=50"),  # its few links read
            ("all_chains", "limit=1"),  # its chains found, then walked
            ("all_chains", "supply_chain=sc_none"),  # an empty page
            ("admin", "limit=1"),  # every factory walked
        ],
    )
    def test_a_revoked_client_is_refused_at_once(
        self, client: TestClient, session: Session, who: str, query: str
    ) -> None:
        buyer, chain = buyer_linking(session, 3)
        credentials = {
            "named": make_client(session, buyer, supply_chains=[chain]),
            "all_chains": make_client(session, buyer),
            "admin": make_programme_client(session),
        }[who]
        session.commit()
        self.assert_refused_once_revoked(client, session, credentials, f"/v1/factories?{query}")

    def test_a_revoked_clients_export_is_refused_before_it_starts(
        self, client: TestClient, session: Session, world: dict[str, object]
    ) -> None:
        credentials = world["north"]
        assert isinstance(credentials, NewClient)
        self.assert_refused_once_revoked(
            client, session, credentials, "/v1/factories", {"Accept": "text/csv"}
        )

    @staticmethod
    def assert_refused_once_revoked(
        client: TestClient,
        session: Session,
        credentials: NewClient,
        url: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The client reads `url`, is revoked, and its same token is refused at once."""
        headers = bearer(client, credentials) | (headers or {})
        assert client.get(url, headers=headers).status_code == 200
        revoked = session.get(Client, credentials.client.id)
        assert revoked is not None
        revoked.revoked_at = utcnow()
        session.commit()
        refused = client.get(url, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "The client behind this token has been revoked."

    @pytest.mark.parametrize("chains", [1, 2])
    @pytest.mark.parametrize("names_its_chains", [True, False])
    def test_a_page_through_the_tokens_chains_takes_one_statement(
        self,
        client: TestClient,
        session: Session,
        engine: Engine,
        chains: int,
        names_its_chains: bool,
    ) -> None:
        # A token naming no chain reads the chains its organisation was seen with as if it
        # named them: the statement walking them checks they are still the caller's.
        buyer, chain = buyer_linking(session, 3)
        others = [make_supply_chain(session, buyer) for _ in range(chains - 1)]
        for other in others:
            link(session, other, make_factory(session))
        named = [chain, *others] if names_its_chains else []
        credentials = make_client(session, buyer, supply_chains=named)
        session.commit()
        headers = bearer(client, credentials)
        assert len(client.get("/v1/factories?limit=1", headers=headers).json()["data"]) == 1
        with count_statements(engine) as statements:
            page = client.get("/v1/factories?limit=1", headers=headers).json()
        assert len(page["data"]) == 1
        reads = [sql for sql in statements if sql.lstrip().upper().startswith(("SELECT", "WITH"))]
        assert len(reads) == 1

    @pytest.mark.parametrize("names_its_chains", [True, False])
    def test_a_page_of_one_of_the_tokens_chains_takes_two_statements(
        self, client: TestClient, session: Session, engine: Engine, names_its_chains: bool
    ) -> None:
        # The chain's walk, checking each row's chain, then the factories' codes in the other
        # chains: a token naming none does not look its chains up first.
        buyer, chain = buyer_linking(session, 3)
        other = make_supply_chain(session, buyer)
        link(session, other, make_factory(session))
        credentials = make_client(
            session, buyer, supply_chains=[chain, other] if names_its_chains else []
        )
        session.commit()
        headers = bearer(client, credentials)
        url = f"/v1/factories?limit=1&supply_chain={chain.id}"
        assert len(client.get(url, headers=headers).json()["data"]) == 1
        with count_statements(engine) as statements:
            page = client.get(url, headers=headers).json()
        assert len(page["data"]) == 1
        reads = [sql for sql in statements if sql.lstrip().upper().startswith(("SELECT", "WITH"))]
        assert len(reads) == 2


class TestFilters:
    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("country=vn", {"shared"}),
            ("country=BD", {"north_only"}),
            ("os_id=VN2020001AAAAAAA", {"shared"}),
            ("supplier_code=N-2", {"north_only"}),
            ("supplier_code=S-9", set()),
            ("q=denim", {"north_only"}),
            ("status=active", {"shared", "north_only"}),
            ("status=suspended", set()),
        ],
    )
    def test_filters(
        self, client: TestClient, world: dict[str, object], query: str, expected: set[str]
    ) -> None:
        response = client.get(f"/v1/factories?{query}", headers=bearer(client, world["north"]))
        assert response.status_code == 200
        assert ids(response.json()) == {world[name].id for name in expected}

    def test_supply_chain_filter_ignores_other_organisations_chains(
        self, client: TestClient, world: dict[str, object]
    ) -> None:
        chain_id = world["north_chain"].id
        mine = client.get(
            f"/v1/factories?supply_chain={chain_id}", headers=bearer(client, world["north"])
        )
        theirs = client.get(
            f"/v1/factories?supply_chain={chain_id}", headers=bearer(client, world["south"])
        )
        assert ids(mine.json()) == {world["shared"].id, world["north_only"].id}
        assert ids(theirs.json()) == set()

    def test_the_risk_band_filter_follows_the_latest_summary(
        self, client: TestClient, world: dict[str, object], session: Session
    ) -> None:
        shared = world["shared"]
        assert isinstance(shared, Factory)

        def banded(band: str) -> list[tuple[str, str]]:
            response = client.get(
                f"/v1/factories?risk_band={band}", headers=bearer(client, world["north"])
            )
            return [(item["id"], item["risk_band"]) for item in response.json()["data"]]

        make_assessment(session, shared, {"CL-CHL-01": False, "OS-MGT-01": True})
        session.commit()
        assert banded("critical") == [(shared.id, "critical")]
        make_assessment(session, shared, {"CL-CHL-01": True, "OS-MGT-01": True}, cycle=2)
        session.commit()
        assert banded("critical") == []
        assert banded("low") == [(shared.id, "low")]

    def test_a_bad_filter_value_is_a_422_naming_the_parameter(
        self, client: TestClient, world: dict[str, object]
    ) -> None:
        response = client.get("/v1/factories?status=closed", headers=bearer(client, world["north"]))
        assert response.status_code == 422
        assert response.json()["errors"][0]["in"] == "query"
        assert response.json()["errors"][0]["field"] == "status"


class TestPagination:
    def test_pages_follow_the_cursor_and_the_link_header(
        self, client: TestClient, session: Session
    ) -> None:
        admin = make_programme_client(session)
        for n in range(7):
            make_factory(session, name=f"F{n}")
        session.commit()
        headers = bearer(client, admin)
        seen: list[str] = []
        url = "/v1/factories?limit=3&updated_since=2020-01-01T00:00:00%2B00:00"
        pages = 0
        while url:
            response = client.get(url, headers=headers)
            body = response.json()
            seen += [item["id"] for item in body["data"]]
            pages += 1
            if body["has_more"]:
                assert response.headers["link"].endswith('>; rel="next"')
                url = response.headers["link"][1:].split(">;")[0].replace("http://testserver", "")
                # The other parameters kept, one cursor: the next one.
                assert parse_qs(urlsplit(url).query) == {
                    "limit": ["3"],
                    "updated_since": ["2020-01-01T00:00:00+00:00"],
                    "cursor": [body["next_cursor"]],
                }
            else:
                assert "link" not in response.headers
                url = ""
        assert pages == 3
        assert len(seen) == len(set(seen)) == 7

    @pytest.mark.parametrize(
        ("host", "linked"),
        [
            ("api.weft.example", "http://api.weft.example/v1/factories?"),
            ("localhost:8080", "http://localhost:8080/v1/factories?"),
            # Not a host: the server's own address, as Starlette gives `request.url`.
            ("bad host/", "http://testserver/v1/factories?"),
        ],
    )
    def test_the_link_header_names_the_host_the_request_named(
        self, client: TestClient, session: Session, host: str, linked: str
    ) -> None:
        admin = make_programme_client(session)
        for _ in range(2):
            make_factory(session)
        session.commit()
        headers = bearer(client, admin)
        for asked in (host, "other.example"):  # each host its own URL, however often asked
            response = client.get("/v1/factories?limit=1", headers=headers | {"Host": asked})
            expected = linked if asked == host else "http://other.example/v1/factories?"
            assert response.headers["link"].startswith(f"<{expected}limit=1&cursor=")

    @pytest.mark.parametrize("cursor", ["garbage!", "eyJrIjoieCJ9", "e30"])
    def test_a_malformed_or_foreign_cursor_is_a_400(
        self, client: TestClient, world: dict[str, object], cursor: str
    ) -> None:
        response = client.get(
            f"/v1/factories?cursor={cursor}", headers=bearer(client, world["north"])
        )
        assert response.status_code == 400
        assert response.json()["type"].endswith("/invalid-cursor")

    def test_limit_is_bounded(self, client: TestClient, world: dict[str, object]) -> None:
        headers = bearer(client, world["north"])
        assert client.get("/v1/factories?limit=501", headers=headers).status_code == 422
        assert client.get("/v1/factories?limit=0", headers=headers).status_code == 422


class TestSync:
    def test_a_walk_during_writes_has_no_duplicate_and_the_next_walk_no_gap(
        self, client: TestClient, session: Session
    ) -> None:
        admin = make_programme_client(session)
        factories = [make_factory(session, name=f"S{n}") for n in range(6)]
        session.commit()
        headers = bearer(client, admin)
        since = "2000-01-01T00:00:00Z"

        def walk(first_url: str, during: list[int] | None = None) -> list[dict[str, str]]:
            rows: list[dict[str, str]] = []
            url: str | None = first_url
            while url:
                body = client.get(url, headers=headers).json()
                rows += body["data"]
                if during:  # edit one factory already seen and one not yet seen, add one
                    for index in (during.pop(0), during.pop(0)):
                        patch = client.patch(
                            f"/v1/factories/{factories[index].id}",
                            json={"workers_total": 5000 + index},
                            headers=headers,
                        )
                        assert patch.status_code == 200
                    created = client.post(
                        "/v1/factories",
                        headers=headers,
                        json={"name": f"New {len(rows)}", "country": "ID"},
                    )
                    assert created.status_code == 201
                url = body["next_cursor"] and f"/v1/factories?limit=2&cursor={body['next_cursor']}"
            return rows

        first = walk(f"/v1/factories?limit=2&updated_since={since}", during=[0, 5])
        first_ids = [row["id"] for row in first]
        assert len(first_ids) == len(set(first_ids))
        # factories[5] changed before the walk reached it: it waits for the next walk
        assert set(first_ids) == {factory.id for factory in factories[:5]}
        newest = max(row["updated_at"] for row in first)
        second = walk(f"/v1/factories?limit=2&updated_since={newest.replace('+00:00', 'Z')}")
        second_by_id = {row["id"]: row for row in second}
        assert second_by_id[factories[0].id]["workers_total"] == 5000
        assert second_by_id[factories[5].id]["workers_total"] == 5005
        assert sum(1 for row in second if row["name"].startswith("New")) == 1
        # two edited, one created, and the boundary row (`updated_since` is inclusive, so rows
        # sharing the newest timestamp are never skipped)
        boundary = {row["id"] for row in first if row["updated_at"] == newest}
        assert len(second) == len(second_by_id)
        assert set(second_by_id) - boundary == {
            factories[0].id,
            factories[5].id,
            next(r["id"] for r in second if r["name"] == "New 2"),
        }

    def test_a_factory_linked_or_unlinked_since_comes_in_the_next_sync(
        self, client: TestClient, session: Session
    ) -> None:
        # Linking changes what the chain's readers see of a factory (whether they see it, its
        # supplier codes) without editing the factory: the sync must fetch it again.
        buyer = make_buyer(session)
        first, second = make_supply_chain(session, buyer), make_supply_chain(session, buyer)
        linked_before, newly_linked = make_factory(session), make_factory(session)
        link(session, first, linked_before, supplier_code="F-1")
        credentials = make_client(session, buyer)
        session.commit()
        headers = bearer(client, credentials)

        def synced_since(moment: str) -> dict[str, list[str]]:
            response = client.get(f"/v1/factories?updated_since={moment}", headers=headers)
            assert response.status_code == 200
            return {
                row["id"]: [code["supplier_code"] for code in row["supplier_codes"]]
                for row in response.json()["data"]
            }

        def moment() -> str:
            return utcnow().isoformat().replace("+00:00", "Z")

        since = moment()
        assert synced_since(since) == {}
        for chain, factory, code in [(first, newly_linked, "F-2"), (second, linked_before, "S-1")]:
            created = client.post(
                f"/v1/supply-chains/{chain.id}/factories",
                json={"factory_id": factory.id, "supplier_code": code},
                headers=headers,
            )
            assert created.status_code == 201
        assert synced_since(since) == {newly_linked.id: ["F-2"], linked_before.id: ["F-1", "S-1"]}

        since = moment()
        unlinked = client.delete(
            f"/v1/supply-chains/{first.id}/factories/{linked_before.id}", headers=headers
        )
        assert unlinked.status_code == 204
        assert synced_since(since) == {linked_before.id: ["S-1"]}


def walked_ids(client: TestClient, headers: dict[str, str], first: dict[str, object]) -> list[str]:
    """The factory ids of a walk from its first page's answer, following its cursors."""
    ids = [str(item["id"]) for item in first["data"]]  # type: ignore[attr-defined]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = client.get(f"/v1/factories?limit=1&cursor={cursor}", headers=headers).json()
        ids += [item["id"] for item in page["data"]]
        cursor = page["next_cursor"]
    return ids


def revalidated(client: TestClient, url: str, headers: dict[str, str]) -> tuple[Any, Any]:
    """An answer, whose entity tag is weak, and the same request again with that tag."""
    first = client.get(url, headers=headers)
    assert first.headers["etag"].startswith('W/"')
    return first, client.get(url, headers=headers | {"If-None-Match": first.headers["etag"]})


class TestConditionalGets:
    """Weak entity tags on pages. A first page's cursor carries the moment its walk started, so
    its bytes differ on every request; its tag names that moment, and the same first page asked
    with the tag is walked from it again while no factory has changed since."""

    @pytest.fixture
    def buyer_headers(self, client: TestClient, session: Session) -> dict[str, str]:
        buyer, _ = buyer_linking(session, 3)
        credentials = make_client(session, buyer)
        session.commit()
        return bearer(client, credentials)

    def test_a_first_page_answers_304_to_its_own_tag(
        self, client: TestClient, buyer_headers: dict[str, str]
    ) -> None:
        first, again = revalidated(client, "/v1/factories?limit=1", buyer_headers)
        assert first.json()["has_more"]
        assert again.status_code == 304
        assert again.headers["etag"] == first.headers["etag"]

    def test_a_later_page_answers_304_to_its_own_tag(
        self, client: TestClient, buyer_headers: dict[str, str]
    ) -> None:
        cursor = client.get("/v1/factories?limit=1", headers=buyer_headers).json()["next_cursor"]
        _, again = revalidated(client, f"/v1/factories?limit=1&cursor={cursor}", buyer_headers)
        assert again.status_code == 304

    def test_a_factory_changed_since_the_tag_gets_a_walk_from_now(
        self, client: TestClient, session: Session, buyer_headers: dict[str, str]
    ) -> None:
        # Walked from the tag's moment, the sync would leave out the factory changed after it.
        first = client.get("/v1/factories?limit=1", headers=buyer_headers)
        changed_id = walked_ids(client, buyer_headers, first.json())[-1]
        update_factory(session, factory_id=changed_id, data=FactoryUpdate(name="Renamed Knits"))
        session.commit()
        again = client.get(
            "/v1/factories?limit=1",
            headers=buyer_headers | {"If-None-Match": first.headers["etag"]},
        )
        assert again.status_code == 200
        assert again.headers["etag"] != first.headers["etag"]
        assert changed_id in walked_ids(client, buyer_headers, again.json())

    def test_a_tag_naming_a_moment_to_come_is_not_walked_from(
        self, client: TestClient, buyer_headers: dict[str, str]
    ) -> None:
        # A walk fixed later than now would list again what changes before that moment.
        to_come = (utcnow() + dt.timedelta(days=1) - EPOCH) // dt.timedelta(microseconds=1)
        forged = f'W/"{"0" * 32}.{to_come}"'
        page = client.get(
            "/v1/factories?limit=1", headers=buyer_headers | {"If-None-Match": forged}
        ).json()
        snapshot = decode_cursor("factories", page["next_cursor"], (dt.datetime, str)).snapshot
        assert snapshot is not None
        assert snapshot <= utcnow()

    def test_other_lists_have_weak_tags_and_answer_304(
        self, client: TestClient, buyer_headers: dict[str, str]
    ) -> None:
        _, again = revalidated(client, "/v1/supply-chains", buyer_headers)
        assert again.status_code == 304


class TestCsvExport:
    def test_accept_csv_streams_every_visible_factory(
        self, client: TestClient, world: dict[str, object]
    ) -> None:
        headers = bearer(client, world["north"]) | {"Accept": "text/csv"}
        response = client.get("/v1/factories", headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert {row["id"] for row in rows} == {world["shared"].id, world["north_only"].id}
        assert {row["supplier_codes"] for row in rows} == {"N-1", "N-2"}


class TestProgrammeEdits:
    def test_create_answers_201_with_location_and_emits_an_event(
        self, client: TestClient, session: Session, engine: Engine
    ) -> None:
        admin = make_programme_client(session)
        session.commit()
        response = client.post(
            "/v1/factories",
            headers=bearer(client, admin),
            json={
                "programme_code": "BW-VN-9001",
                "name": "Song Hong Garment",
                "country": "VN",
                "workers_total": 900,
                "workers_women": 600,
                "status": "enrolled",
            },
        )
        assert response.status_code == 201
        factory_id = response.json()["id"]
        assert response.headers["location"] == f"/v1/factories/{factory_id}"
        assert factory_id.startswith("fac_")
        with Session(engine) as check:
            events = check.exec(select(Event).where(Event.factory_id == factory_id)).all()
        assert [e.type for e in events] == ["factory.updated"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": "X", "country": "Vietnam"}, "country"),
            ({"name": "X", "country": "VN", "colour": "red"}, "colour"),
            ({"name": "X", "country": "VN", "workers_total": 5, "workers_women": 9}, "body"),
            ({"country": "VN"}, "name"),
            ({"name": "X", "country": "VN", "enrolled_on": 0}, "enrolled_on"),
            ({"name": "X", "country": "VN", "enrolled_on": "86400"}, "enrolled_on"),
        ],
    )
    def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
        self,
        client: TestClient,
        session: Session,
        engine: Engine,
        body: dict[str, object],
        field: str,
    ) -> None:
        admin = make_programme_client(session)
        session.commit()
        response = client.post("/v1/factories", headers=bearer(client, admin), json=body)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == field
        with Session(engine) as check:
            assert check.exec(select(Factory)).all() == []

    def test_a_duplicate_os_id_is_a_409(self, client: TestClient, session: Session) -> None:
        admin = make_programme_client(session)
        make_factory(session, os_id="BD2019001ABCDEFG")
        session.commit()
        response = client.post(
            "/v1/factories",
            headers=bearer(client, admin),
            json={"name": "Copy", "country": "BD", "os_id": "BD2019001ABCDEFG"},
        )
        assert response.status_code == 409
        assert response.json()["errors"][0]["field"] == "os_id"

    def test_a_status_change_emits_both_events_and_no_change_emits_none(
        self, client: TestClient, session: Session, engine: Engine
    ) -> None:
        admin = make_programme_client(session)
        factory = make_factory(session, status="active")
        session.commit()
        headers = bearer(client, admin)
        url = f"/v1/factories/{factory.id}"
        assert client.patch(url, json={"status": "suspended"}, headers=headers).status_code == 200
        assert client.patch(url, json={"status": "suspended"}, headers=headers).status_code == 200
        with Session(engine) as check:
            types = [e.type for e in check.exec(select(Event).order_by(Event.id)).all()]
        assert types == ["factory.updated", "factory.status_changed"]

    def test_buyers_cannot_edit(self, client: TestClient, world: dict[str, object]) -> None:
        response = client.patch(
            f"/v1/factories/{world['shared'].id}",
            json={"name": "Mine"},
            headers=bearer(client, world["north"]),
        )
        assert response.status_code == 403


class TestListedAsWritten:
    """A page serves each factory's stored encoding: it follows every write, and reads as the
    detail does."""

    def listed(self, client: TestClient, caller: NewClient) -> dict[str, dict[str, object]]:
        response = client.get("/v1/factories", headers=bearer(client, caller))
        assert response.status_code == 200
        return {item["id"]: item for item in response.json()["data"]}

    def test_a_page_item_is_the_detail(self, client: TestClient, world: dict[str, object]) -> None:
        north = world["north"]
        assert isinstance(north, NewClient)
        listed = self.listed(client, north)
        assert len(listed) == 2
        for factory_id, item in listed.items():
            detail = client.get(f"/v1/factories/{factory_id}", headers=bearer(client, north))
            assert item == detail.json()

    def test_an_edit_shows_on_the_next_page(
        self, client: TestClient, world: dict[str, object]
    ) -> None:
        north, admin, shared = world["north"], world["admin"], world["shared"]
        assert isinstance(north, NewClient)
        assert isinstance(admin, NewClient)
        assert isinstance(shared, Factory)
        edited = client.patch(
            f"/v1/factories/{shared.id}",
            headers=bearer(client, admin),
            json={"name": "Shared Knit & Dye", "workers_total": 1500, "enrolled_on": "2021-05-06"},
        )
        assert edited.status_code == 200
        item = self.listed(client, north)[shared.id]
        assert (item["name"], item["workers_total"], item["enrolled_on"]) == (
            "Shared Knit & Dye", 1500, "2021-05-06",
        )  # fmt: skip
        assert item["updated_at"] == edited.json()["updated_at"]
        assert item["supplier_codes"] == [
            {"supply_chain_id": world["north_chain"].id, "supplier_code": "N-1"}  # type: ignore[attr-defined]
        ]

    def test_a_published_assessment_shows_its_band_and_moment(
        self, client: TestClient, session: Session, world: dict[str, object]
    ) -> None:
        north, shared = world["north"], world["shared"]
        assert isinstance(north, NewClient)
        assert isinstance(shared, Factory)
        before = self.listed(client, north)[shared.id]
        assert before["risk_band"] is None
        make_assessment(session, shared, {"CL-CHL-01": False, "OS-MGT-01": True})
        session.commit()
        item = self.listed(client, north)[shared.id]
        detail = client.get(f"/v1/factories/{shared.id}", headers=bearer(client, north)).json()
        assert item["risk_band"] is not None
        assert item == detail
        assert item["updated_at"] > before["updated_at"]


class TestNoQueryPerRow:
    def test_a_page_of_10_and_a_page_of_500_cost_the_same_statements(
        self, client: TestClient, session: Session, engine: Engine
    ) -> None:
        # More than a page of 500 to come: both pages walk the caller's chains (a caller seeing
        # at most a page has its links read, in statements of their own number).
        buyer, _ = buyer_linking(session, 600)
        credentials: NewClient = make_client(session, buyer)
        session.commit()
        headers = bearer(client, credentials)
        # Verifies the token and counts what the caller sees: both are cached for later pages.
        assert client.get("/v1/factories?limit=1", headers=headers).status_code == 200
        counts = []
        for limit in (10, 500):
            with count_statements(engine) as statements:
                response = client.get(f"/v1/factories?limit={limit}", headers=headers)
            assert len(response.json()["data"]) == limit
            counts.append(len(statements))
        assert counts[0] == counts[1]

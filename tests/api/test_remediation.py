"""Remediation items: created at publish, read with consent, moved one step at a time by the
programme, each change recomputing the stored summary."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from src.models import ComplianceSummary, Event, Question, RemediationItem
from tests.api.test_assessments import access_log
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
)

TODAY = dt.date.today()
VISIT_START = TODAY - dt.timedelta(days=70)
VISIT_END = VISIT_START + dt.timedelta(days=2)
# CO-MWA-01 is critical (due after 60 days: overdue); OS-MGT-01 is not (90 days: not yet).
FINDINGS = {"CO-MWA-01": False, "OS-MGT-01": False, "OS-MGT-02": True}


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    consenting, other = make_buyer(session), make_buyer(session)
    chain, other_chain = make_supply_chain(session, consenting), make_supply_chain(session, other)
    factory, hidden = make_factory(session), make_factory(session)
    link(session, chain, factory)
    link(session, other_chain, factory)
    grant_consent(session, factory, consenting)
    assessment = make_assessment(
        session, factory, FINDINGS, visit_start=VISIT_START, visit_end=VISIT_END
    )
    hidden_assessment = make_assessment(session, hidden, FINDINGS)
    items = {
        code: item
        for item, code in session.exec(
            select(RemediationItem, Question.code).join(
                Question, col(Question.id) == col(RemediationItem.question_id)
            )
        ).all()
        if item.assessment_id == assessment.id
    }
    world = {
        "factory": factory,
        "hidden": hidden,
        "assessment": assessment,
        "critical": items["CO-MWA-01"],
        "other": items["OS-MGT-01"],
        "hidden_item": session.exec(
            select(RemediationItem).where(RemediationItem.assessment_id == hidden_assessment.id)
        ).first(),
        "admin": make_programme_client(session),
        "reader": make_client(session, consenting, supply_chains=[chain]),
        "no_consent": make_client(session, other, supply_chains=[other_chain]),
    }
    session.commit()
    return world


def remediation_figures(session: Session, factory_id: str) -> dict[str, Any]:
    session.expire_all()
    row = session.get(ComplianceSummary, factory_id)
    assert row is not None
    figures: dict[str, Any] = json.loads(row.full_json)["remediation"]
    return figures | {"risk_band": row.risk_band}


class TestCreatedAtPublish:
    def test_one_item_per_non_compliant_finding(
        self, client: TestClient, world: dict[str, Any]
    ) -> None:
        response = client.get(
            f"/v1/remediation-items/{world['critical'].id}",
            headers=bearer(client, world["reader"]),
        )
        assert response.status_code == 200
        body = response.json()
        text = body["question_text"]
        assert text.startswith("Does the employer pay workers at least the legal minimum wage")
        assert body == {
            "id": world["critical"].id,
            "factory_id": world["factory"].id,
            "assessment_id": world["assessment"].id,
            "question": "CO-MWA-01",
            "question_text": text,
            "critical": True,
            "action": f"Correct the non-compliance and prevent its recurrence: {text}",
            "owner": "factory management",
            "due_on": (VISIT_END + dt.timedelta(days=60)).isoformat(),
            "status": "open",
            "overdue": True,
            "verified_at": None,
            "created_at": body["created_at"],
            "updated_at": body["created_at"],
        }

    def test_a_non_critical_item_is_due_after_90_days(
        self, client: TestClient, world: dict[str, Any]
    ) -> None:
        body = client.get(
            f"/v1/remediation-items/{world['other'].id}", headers=bearer(client, world["reader"])
        ).json()
        assert (body["due_on"], body["overdue"], body["critical"]) == (
            (VISIT_END + dt.timedelta(days=90)).isoformat(),
            False,
            False,
        )


class TestReads:
    def test_list_a_factorys_items(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        factory = world["factory"]
        response = client.get(
            f"/v1/factories/{factory.id}/remediation-items",
            headers=bearer(client, world["reader"]),
        )
        assert response.status_code == 200
        assert sorted(item["question"] for item in response.json()["data"]) == [
            "CO-MWA-01",
            "OS-MGT-01",
        ]
        assert access_log(session) == [("remediation_items", factory.id, factory.id)]

    def test_filter_by_status_and_pages(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        item = session.get(RemediationItem, world["other"].id)
        item.status = "in_progress"
        session.commit()
        headers = bearer(client, world["reader"])
        url = f"/v1/factories/{world['factory'].id}/remediation-items"
        in_progress = client.get(f"{url}?status=in_progress", headers=headers).json()["data"]
        assert [i["id"] for i in in_progress] == [world["other"].id]
        first = client.get(f"{url}?limit=1", headers=headers).json()
        second = client.get(f"{url}?limit=1&cursor={first['next_cursor']}", headers=headers).json()
        assert (first["has_more"], second["has_more"]) == (True, False)
        assert {first["data"][0]["id"], second["data"][0]["id"]} == {
            world["critical"].id,
            world["other"].id,
        }

    def test_without_consent_reads_are_403(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        headers = bearer(client, world["no_consent"])
        listing = client.get(
            f"/v1/factories/{world['factory'].id}/remediation-items", headers=headers
        )
        detail = client.get(f"/v1/remediation-items/{world['critical'].id}", headers=headers)
        for response in (listing, detail):
            assert response.status_code == 403
            assert response.json()["type"] == "https://weft.dev/problems/consent-required"
        assert access_log(session) == []

    def test_items_of_a_hidden_factory_are_404(
        self, client: TestClient, world: dict[str, Any]
    ) -> None:
        headers = bearer(client, world["reader"])
        listing = client.get(
            f"/v1/factories/{world['hidden'].id}/remediation-items", headers=headers
        )
        detail = client.get(f"/v1/remediation-items/{world['hidden_item'].id}", headers=headers)
        assert listing.status_code == detail.status_code == 404
        assert detail.json()["detail"] == f"No remediation item {world['hidden_item'].id}."

    def test_items_of_a_retracted_assessment_are_hidden_outside_the_programme(
        self, client: TestClient, world: dict[str, Any]
    ) -> None:
        admin = bearer(client, world["admin"])
        retract = client.post(f"/v1/assessments/{world['assessment'].id}/retract", headers=admin)
        assert retract.status_code == 200
        url = f"/v1/remediation-items/{world['critical'].id}"
        assert client.get(url, headers=bearer(client, world["reader"])).status_code == 404
        assert client.get(url, headers=admin).status_code == 200


class TestUpdate:
    def patch(self, client: TestClient, world: dict[str, Any], body: dict[str, Any]) -> Any:
        return client.patch(
            f"/v1/remediation-items/{world['critical'].id}",
            headers=bearer(client, world["admin"]),
            json=body,
        )

    def test_status_moves_one_step_at_a_time_to_verified(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        factory_id = world["factory"].id
        assert remediation_figures(session, factory_id) == {
            "open": 2, "in_progress": 0, "done": 0, "verified": 0, "overdue": 1, "total": 2,
            "risk_band": "critical",
        }  # fmt: skip
        for status in ("in_progress", "done", "verified"):
            response = self.patch(client, world, {"status": status})
            assert response.status_code == 200, response.text
            assert response.json()["status"] == status
        assert response.json()["verified_at"] is not None
        assert response.json()["overdue"] is False
        # 2 of 3 asked non-compliant, but the critical issue is verified: high, not critical.
        assert remediation_figures(session, factory_id) == {
            "open": 1, "in_progress": 0, "done": 0, "verified": 1, "overdue": 0, "total": 2,
            "risk_band": "high",
        }  # fmt: skip

    @pytest.mark.parametrize(
        ("steps", "refused"),
        [
            ([], "done"),
            ([], "verified"),
            (["in_progress"], "open"),
            (["in_progress", "done"], "in_progress"),
            (["in_progress", "done", "verified"], "done"),
        ],
    )
    def test_any_other_move_is_a_conflict(
        self,
        client: TestClient,
        session: Session,
        world: dict[str, Any],
        steps: list[str],
        refused: str,
    ) -> None:
        for status in steps:
            assert self.patch(client, world, {"status": status}).status_code == 200
        response = self.patch(client, world, {"status": refused})
        assert response.status_code == 409
        assert response.json()["type"] == "https://weft.dev/problems/conflict"
        session.expire_all()
        assert session.get(RemediationItem, world["critical"].id).status == (
            steps[-1] if steps else "open"
        )

    def test_action_owner_and_due_date(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        due = (TODAY + dt.timedelta(days=30)).isoformat()
        response = self.patch(
            client,
            world,
            {"action": "Pay the arrears to 212 workers.", "owner": "HR manager", "due_on": due},
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["action"], body["owner"], body["due_on"], body["overdue"]) == (
            "Pay the arrears to 212 workers.",
            "HR manager",
            due,
            False,
        )
        # The new due date is no longer past: the summary's overdue count follows.
        assert remediation_figures(session, world["factory"].id)["overdue"] == 0

    def test_each_change_emits_its_event(
        self, client: TestClient, session: Session, world: dict[str, Any]
    ) -> None:
        session.expire_all()
        before = {e.id for e in session.exec(select(Event)).all()}
        assert self.patch(client, world, {"status": "in_progress"}).status_code == 200
        session.expire_all()
        new = [
            e
            for e in session.exec(select(Event).order_by(col(Event.id))).all()
            if e.id not in before
        ]
        assert [(e.type, e.factory_id) for e in new] == [
            ("remediation_item.updated", world["factory"].id),
            ("compliance_summary.updated", world["factory"].id),
        ]
        assert new[0].data == {
            "remediation_item_id": world["critical"].id,
            "factory_id": world["factory"].id,
            "assessment_id": world["assessment"].id,
            "status": "in_progress",
            "changed": ["status"],
        }

    @pytest.mark.parametrize(
        ("body", "field"),
        [({"status": None}, "status"), ({"owner": None}, "owner"), ({"colour": "red"}, "colour")],
    )
    def test_invalid_bodies_are_422(
        self, client: TestClient, world: dict[str, Any], body: dict[str, Any], field: str
    ) -> None:
        response = self.patch(client, world, body)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == field

    def test_only_the_programme_updates(self, client: TestClient, world: dict[str, Any]) -> None:
        response = client.patch(
            f"/v1/remediation-items/{world['critical'].id}",
            headers=bearer(client, world["reader"]),
            json={"status": "in_progress"},
        )
        assert response.status_code == 403

    def test_an_unknown_item_is_a_404(self, client: TestClient, world: dict[str, Any]) -> None:
        response = client.patch(
            "/v1/remediation-items/rem_01ZZZZZZZZZZZZZZZZZZZZZZZZ",
            headers=bearer(client, world["admin"]),
            json={"status": "in_progress"},
        )
        assert response.status_code == 404

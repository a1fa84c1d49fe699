"""The outbox: a change and its events commit together or not at all, one event per change."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from src.db import transaction
from src.models import Assessment, ComplianceSummary, Event, RemediationItem
from src.models.assessments import RemediationItemUpdate
from src.services.assessments import publish_assessment, retract_assessment
from src.services.errors import Conflict
from src.services.remediation import update_remediation_item
from tests.builders import make_assessment, make_factory

FINDINGS = {"CL-CHL-01": False, "OS-MGT-01": False, "OS-MGT-02": True}


class Boom(Exception):
    pass


def event_types(engine: Engine) -> Counter[str]:
    with Session(engine) as session:
        return Counter(session.exec(select(Event.type)).all())


@pytest.fixture
def draft_id(session: Session) -> str:
    factory = make_factory(session)
    draft = make_assessment(session, factory, FINDINGS, publish=False)
    session.commit()
    return draft.id


class TestRolledBack:
    def test_a_rolled_back_publish_leaves_no_event_and_no_change(
        self, engine: Engine, draft_id: str
    ) -> None:
        def publish_then_fail() -> None:
            with transaction(engine) as session:
                publish_assessment(session, assessment_id=draft_id)
                session.flush()
                raise Boom

        with pytest.raises(Boom):
            publish_then_fail()
        assert event_types(engine) == Counter()
        with Session(engine) as session:
            assert session.get(Assessment, draft_id).status == "draft"
            assert session.exec(select(RemediationItem)).all() == []
            assert session.exec(select(ComplianceSummary)).all() == []

    def test_a_refused_move_leaves_no_event(self, engine: Engine, draft_id: str) -> None:
        with transaction(engine) as session:
            publish_assessment(session, assessment_id=draft_id)
            item_id = session.exec(select(RemediationItem.id)).first()
        before = event_types(engine)

        def edit_then_skip_to_verified() -> None:
            with transaction(engine) as session:
                update_remediation_item(
                    session, item_id=item_id, data=RemediationItemUpdate(owner="HR manager")
                )
                update_remediation_item(
                    session, item_id=item_id, data=RemediationItemUpdate(status="verified")
                )

        with pytest.raises(Conflict):
            edit_then_skip_to_verified()
        assert event_types(engine) == before
        with Session(engine) as session:
            assert session.get(RemediationItem, item_id).owner == "factory management"


class TestCommitted:
    def test_one_event_per_change(self, engine: Engine, draft_id: str) -> None:
        with transaction(engine) as session:
            publish_assessment(session, assessment_id=draft_id)
        assert event_types(engine) == Counter(
            {"assessment.published": 1, "compliance_summary.updated": 1}
        )
        with transaction(engine) as session:
            item_id = session.exec(
                select(RemediationItem.id).order_by(col(RemediationItem.id))
            ).first()
            update_remediation_item(
                session, item_id=item_id, data=RemediationItemUpdate(status="in_progress")
            )
        assert event_types(engine) == Counter(
            {
                "assessment.published": 1,
                "remediation_item.updated": 1,
                "compliance_summary.updated": 2,
            }
        )
        with transaction(engine) as session:
            retract_assessment(session, assessment_id=draft_id)
        assert event_types(engine) == Counter(
            {
                "assessment.published": 1,
                "remediation_item.updated": 1,
                "assessment.retracted": 1,
                "compliance_summary.updated": 3,
            }
        )

    def test_a_change_that_leaves_the_summary_as_it_was_emits_no_summary_event(
        self, engine: Engine, draft_id: str
    ) -> None:
        with transaction(engine) as session:
            publish_assessment(session, assessment_id=draft_id)
            item_id = session.exec(select(RemediationItem.id)).first()
        before = event_types(engine)
        with transaction(engine) as session:
            update_remediation_item(
                session, item_id=item_id, data=RemediationItemUpdate(owner="HR manager")
            )
        assert event_types(engine) - before == Counter({"remediation_item.updated": 1})

    def test_events_carry_the_factory(self, engine: Engine, draft_id: str) -> None:
        with transaction(engine) as session:
            factory_id = publish_assessment(session, assessment_id=draft_id).factory_id
        with Session(engine) as session:
            assert {event.factory_id for event in session.exec(select(Event)).all()} == {factory_id}

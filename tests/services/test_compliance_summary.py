"""The stored compliance summary against hand-computed figures: a factory asked 10 questions in
3 clusters over two cycles, retraction falling back, no published assessment, each risk band."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from src.models import (
    Assessment,
    ComplianceSummary,
    Factory,
    Finding,
    Question,
    RemediationItem,
)
from src.models.assessments import RemediationItemUpdate, RemediationStatus
from src.models.compliance_summaries import RiskBand, decode_cluster_counts
from src.services.assessments import retract_assessment
from src.services.catalogue import catalogue_questions
from src.services.compliance_figures import risk_band
from src.services.compliance_summaries import refresh_summary
from src.services.demo_compliance import seed_demo_compliance
from src.services.remediation import update_remediation_item
from tests.api.test_catalogue import extra_catalogue
from tests.builders import make_assessment, make_factory

TODAY = dt.date.today()
# Cycle 2 was visited 70 days ago: critical items (due after 60 days) are overdue, others not.
CYCLE_2_START = TODAY - dt.timedelta(days=70)
CYCLE_2_END = CYCLE_2_START + dt.timedelta(days=2)

# 10 questions: CL 3 (core labour standards), CO 4, OS 3. False = non-compliant.
CYCLE_1 = {
    "CL-CHL-01": True,
    "CL-CHL-03": False,
    "CL-DOC-01": True,
    "CO-MWA-01": False,  # critical, public
    "CO-MWA-03": False,
    "CO-OTW-01": True,
    "CO-PLV-01": True,
    "OS-MGT-01": False,
    "OS-MGT-02": True,
    "OS-EMP-01": True,
}
CYCLE_2 = {
    "CL-CHL-01": True,
    "CL-CHL-03": True,
    "CL-DOC-01": True,
    "CO-MWA-01": True,
    "CO-MWA-03": False,
    "CO-OTW-01": False,  # public
    "CO-PLV-01": True,
    "OS-MGT-01": True,
    "OS-MGT-02": True,
    "OS-EMP-01": False,  # critical, public
}


def stored(session: Session, factory: Factory) -> ComplianceSummary:
    session.expire_all()
    row = session.get(ComplianceSummary, factory.id)
    assert row is not None
    return row


def body(raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    data.pop("updated_at")
    return data


def cluster_counts(session: Session, factory: Factory) -> dict[str, tuple[int, int]]:
    summary = session.get(ComplianceSummary, factory.id)
    assert summary is not None
    counts = decode_cluster_counts(summary.cluster_counts)
    return {code: (asked, non_compliant) for code, (asked, non_compliant) in counts.items()}


def item_for(session: Session, assessment_id: str, code: str) -> RemediationItem:
    return session.exec(
        select(RemediationItem)
        .join(Question, col(Question.id) == col(RemediationItem.question_id))
        .where(col(RemediationItem.assessment_id) == assessment_id, col(Question.code) == code)
    ).one()


@pytest.fixture
def two_cycles(session: Session) -> dict[str, Any]:
    factory = make_factory(session)
    first = make_assessment(session, factory, CYCLE_1, cycle=1)
    second = make_assessment(
        session,
        factory,
        CYCLE_2,
        cycle=2,
        visit_start=CYCLE_2_START,
        visit_end=CYCLE_2_END,
    )
    session.commit()
    return {"factory": factory, "first": first, "second": second}


def assessment_ref(assessment: Any, cycle: int) -> dict[str, Any]:
    return {
        "id": assessment.id,
        "cycle": cycle,
        "kind": "assessment",
        "announced": True,
        "visit_start": assessment.visit_start.isoformat(),
        "visit_end": assessment.visit_end.isoformat(),
        "catalogue_version": "2026.1",
        "published_at": assessment.published_at.isoformat().replace("+00:00", "Z"),
    }


class TestTwoCycles:
    def test_full_summary_figures(self, session: Session, two_cycles: dict[str, Any]) -> None:
        factory, first, second = two_cycles["factory"], two_cycles["first"], two_cycles["second"]
        full = body(stored(session, factory).full_json)
        emp_item = item_for(session, second.id, "OS-EMP-01")
        assert full == {
            "factory_id": factory.id,
            "disclosure": "full",
            "assessment": assessment_ref(second, 2),
            "previous_assessment": assessment_ref(first, 1),
            "risk_band": "critical",
            "previous_risk_band": "critical",
            "non_compliance": {"asked": 10, "non_compliant": 3, "rate": 0.3},
            "clusters": [
                {
                    "asked": 3, "non_compliant": 0, "rate": 0.0, "code": "CL",
                    "name": "Child Labour", "category": "core_labour_standards",
                    "previous_rate": 0.3333, "change": -0.3333,
                    "points": [
                        {"asked": 2, "non_compliant": 0, "rate": 0.0, "code": "CL-CHL",
                         "name": "Child Labourers"},
                        {"asked": 1, "non_compliant": 0, "rate": 0.0, "code": "CL-DOC",
                         "name": "Documentation and Protection of Young Workers"},
                    ],
                },
                {
                    "asked": 4, "non_compliant": 2, "rate": 0.5, "code": "CO",
                    "name": "Compensation", "category": "working_conditions",
                    "previous_rate": 0.5, "change": 0.0,
                    "points": [
                        {"asked": 2, "non_compliant": 1, "rate": 0.5, "code": "CO-MWA",
                         "name": "Minimum Wages"},
                        {"asked": 1, "non_compliant": 1, "rate": 1.0, "code": "CO-OTW",
                         "name": "Overtime Wages"},
                        {"asked": 1, "non_compliant": 0, "rate": 0.0, "code": "CO-PLV",
                         "name": "Paid Leave"},
                    ],
                },
                {
                    "asked": 3, "non_compliant": 1, "rate": 0.3333, "code": "OS",
                    "name": "Occupational Safety and Health", "category": "working_conditions",
                    "previous_rate": 0.3333, "change": 0.0,
                    "points": [
                        {"asked": 2, "non_compliant": 0, "rate": 0.0, "code": "OS-MGT",
                         "name": "OSH Management Systems"},
                        {"asked": 1, "non_compliant": 1, "rate": 1.0, "code": "OS-EMP",
                         "name": "Emergency Preparedness"},
                    ],
                },
            ],
            "critical_issues": [
                {
                    "question": "OS-EMP-01",
                    "text": emp_item.action.split(": ", 1)[1],
                    "cluster": "OS",
                    "compliance_point": "OS-EMP",
                    "public": True,
                    "remediation_item_id": emp_item.id,
                    "status": "open",
                    "due_on": (CYCLE_2_END + dt.timedelta(days=60)).isoformat(),
                    "overdue": True,
                }
            ],
            "remediation": {
                "open": 3, "in_progress": 0, "done": 0, "verified": 0, "overdue": 1, "total": 3,
            },
        }  # fmt: skip

    def test_public_summary_keeps_aggregates_and_public_issues_only(
        self, session: Session, two_cycles: dict[str, Any]
    ) -> None:
        row = stored(session, two_cycles["factory"])
        full, public = body(row.full_json), body(row.public_json)
        assert public["disclosure"] == "public"
        assert public["remediation"] is None
        assert [c["points"] for c in public["clusters"]] == [None, None, None]
        strip = [{k: v for k, v in c.items() if k != "points"} for c in full["clusters"]]
        assert [{k: v for k, v in c.items() if k != "points"} for c in public["clusters"]] == strip
        assert [(i["question"], i["remediation_item_id"]) for i in public["critical_issues"]] == [
            ("OS-EMP-01", None)
        ]

    def test_a_non_public_critical_issue_is_only_in_the_full_summary(
        self, session: Session, engine: Engine
    ) -> None:
        with extra_catalogue(
            engine, session, "2020.1", dt.date(2020, 1, 1), {"CL-CHL-01": {"public": False}}
        ):
            factory = make_factory(session)
            make_assessment(
                session,
                factory,
                {"CL-CHL-01": False, "CL-CHL-02": False},
                catalogue_version="2020.1",
            )
            session.commit()
            row = stored(session, factory)
            full, public = body(row.full_json), body(row.public_json)
            assert [i["question"] for i in full["critical_issues"]] == ["CL-CHL-01", "CL-CHL-02"]
            assert [i["public"] for i in full["critical_issues"]] == [False, True]
            assert [i["question"] for i in public["critical_issues"]] == ["CL-CHL-02"]
            assert public["non_compliance"] == full["non_compliance"]

    def test_stored_columns_and_cluster_counts(
        self, session: Session, two_cycles: dict[str, Any]
    ) -> None:
        factory, second = two_cycles["factory"], two_cycles["second"]
        row = stored(session, factory)
        assert (row.assessment_id, row.cycle, row.risk_band, row.previous_risk_band) == (
            second.id,
            2,
            "critical",
            "critical",
        )
        assert row.open_critical_count == 1
        assert cluster_counts(session, factory) == {"CL": (3, 0), "CO": (4, 2), "OS": (3, 1)}

    def test_publishing_bumps_the_factorys_updated_at(
        self, session: Session, two_cycles: dict[str, Any]
    ) -> None:
        factory = two_cycles["factory"]
        session.expire_all()
        assert session.get(Factory, factory.id).updated_at == stored(session, factory).updated_at

    def test_remediation_changes_recompute_band_and_progress(
        self, session: Session, two_cycles: dict[str, Any]
    ) -> None:
        factory, first, second = two_cycles["factory"], two_cycles["first"], two_cycles["second"]
        emp = item_for(session, second.id, "OS-EMP-01").id
        for status in ("in_progress", "done"):
            update_remediation_item(session, item_id=emp, data=RemediationItemUpdate(status=status))
        session.commit()
        row = stored(session, factory)
        full = body(row.full_json)
        # No open critical issue left; 30 % overall non-compliance is high.
        assert row.risk_band == "high"
        assert row.open_critical_count == 0
        assert full["remediation"] == {
            "open": 2, "in_progress": 0, "done": 1, "verified": 0, "overdue": 0, "total": 3,
        }  # fmt: skip
        assert full["critical_issues"][0]["status"] == "done"
        assert full["critical_issues"][0]["overdue"] is False
        # The previous cycle's band follows its own items: its critical issue is closed too.
        mwa = item_for(session, first.id, "CO-MWA-01").id
        for status in ("in_progress", "done"):
            update_remediation_item(session, item_id=mwa, data=RemediationItemUpdate(status=status))
        session.commit()
        assert stored(session, factory).previous_risk_band == "high"  # 40 % overall


class TestFallback:
    def test_retracting_the_latest_cycle_falls_back_to_the_previous_one(
        self, session: Session, two_cycles: dict[str, Any]
    ) -> None:
        factory, first, second = two_cycles["factory"], two_cycles["first"], two_cycles["second"]
        retract_assessment(session, assessment_id=second.id)
        session.commit()
        row = stored(session, factory)
        full = body(row.full_json)
        assert full["assessment"] == assessment_ref(first, 1)
        assert full["previous_assessment"] is None
        assert full["previous_risk_band"] is None
        assert full["non_compliance"] == {"asked": 10, "non_compliant": 4, "rate": 0.4}
        assert [
            (c["code"], c["rate"], c["previous_rate"], c["change"]) for c in full["clusters"]
        ] == [
            ("CL", 0.3333, None, None),
            ("CO", 0.5, None, None),
            ("OS", 0.3333, None, None),
        ]
        assert [i["question"] for i in full["critical_issues"]] == ["CO-MWA-01"]
        assert full["remediation"]["total"] == 4
        assert (row.assessment_id, row.cycle, row.risk_band) == (first.id, 1, "critical")
        assert cluster_counts(session, factory) == {"CL": (3, 1), "CO": (4, 2), "OS": (3, 1)}

    def test_retracting_every_assessment_leaves_a_summary_with_nulls(
        self, session: Session, two_cycles: dict[str, Any]
    ) -> None:
        factory = two_cycles["factory"]
        for name in ("second", "first"):
            retract_assessment(session, assessment_id=two_cycles[name].id)
        session.commit()
        row = stored(session, factory)
        assert body(row.public_json) == {
            "factory_id": factory.id,
            "disclosure": "public",
            "assessment": None,
            "previous_assessment": None,
            "risk_band": None,
            "previous_risk_band": None,
            "non_compliance": None,
            "clusters": [],
            "critical_issues": [],
            "remediation": None,
        }
        assert (row.assessment_id, row.cycle, row.risk_band, row.open_critical_count) == (
            None,
            None,
            None,
            0,
        )
        assert cluster_counts(session, factory) == {}

    def test_a_factory_without_published_assessments_gets_a_null_summary(
        self, session: Session
    ) -> None:
        factory = make_factory(session)
        make_assessment(session, factory, CYCLE_1, publish=False)
        refresh_summary(session, factory_id=factory.id)
        session.commit()
        row = stored(session, factory)
        assert body(row.full_json)["assessment"] is None
        assert body(row.full_json)["disclosure"] == "full"
        assert row.risk_band is None

    def test_an_unchanged_summary_is_not_rewritten(
        self, session: Session, two_cycles: dict[str, Any]
    ) -> None:
        factory = two_cycles["factory"]
        before = stored(session, factory)
        stamp, raw = before.updated_at, before.full_json
        refresh_summary(session, factory_id=factory.id)
        session.commit()
        after = stored(session, factory)
        assert (after.updated_at, after.full_json) == (stamp, raw)


class TestRiskBand:
    @pytest.mark.parametrize(
        ("findings", "band"),
        [
            # 1 of 10 non-compliant on an open critical question.
            ({"CL-CHL-01": False} | {f"OS-MGT-0{n}": True for n in (1, 2, 3, 4)}, "critical"),
            # 3 of 10 non-compliant (30 %), none critical.
            (
                {f"OS-MGT-0{n}": False for n in (1, 2, 3)}
                | {f"OS-CHE-0{n}": True for n in (1, 2, 3, 4)}
                | {"OS-ENV-01": True, "OS-ENV-02": True, "OS-ENV-03": True},
                "high",
            ),
            # 1 of 10 overall (10 %) but 1 of 3 (33 %) in Child Labour, a core standard.
            (
                {"CL-CHL-03": False, "CL-DOC-01": True, "CL-DOC-02": True}
                | {f"OS-CHE-0{n}": True for n in (1, 2, 3, 4)}
                | {"OS-ENV-01": True, "OS-ENV-02": True, "OS-ENV-03": True},
                "high",
            ),
            # 1 of 10 (10 %) outside the core standards.
            (
                {"OS-MGT-01": False}
                | {f"OS-CHE-0{n}": True for n in (1, 2, 3, 4)}
                | {f"OS-ENV-0{n}": True for n in (1, 2, 3, 4)}
                | {"OS-MGT-02": True},
                "medium",
            ),
            # 1 of 11 (9 %) outside the core standards.
            (
                {"OS-MGT-01": False}
                | {f"OS-CHE-0{n}": True for n in (1, 2, 3, 4)}
                | {f"OS-ENV-0{n}": True for n in (1, 2, 3, 4)}
                | {"OS-MGT-02": True, "OS-MGT-03": True},
                "low",
            ),
        ],
    )
    def test_bands_from_published_findings(
        self, session: Session, findings: dict[str, bool], band: str
    ) -> None:
        factory = make_factory(session)
        make_assessment(session, factory, findings)
        session.commit()
        assert stored(session, factory).risk_band == band

    @pytest.mark.parametrize(
        ("open_critical", "overall", "core", "band"),
        [
            (1, 0.0, [0.0], RiskBand.critical),
            (0, 0.25, [0.0], RiskBand.high),
            (0, 0.2499, [0.2], RiskBand.high),
            (0, 0.2499, [0.1999, None], RiskBand.medium),
            (0, 0.1, [], RiskBand.medium),
            (0, 0.0999, [0.1], RiskBand.low),
            (0, None, [], RiskBand.low),
        ],
    )
    def test_thresholds(
        self, open_critical: int, overall: float | None, core: list[float | None], band: RiskBand
    ) -> None:
        assert (
            risk_band(open_critical=open_critical, overall_rate=overall, core_cluster_rates=core)
            == band
        )

    def test_a_verified_critical_issue_no_longer_makes_the_band_critical(
        self, session: Session
    ) -> None:
        factory = make_factory(session)
        assessment = make_assessment(
            session, factory, {"CL-CHL-01": False} | {f"OS-CHE-0{n}": True for n in range(1, 5)}
        )
        item = item_for(session, assessment.id, "CL-CHL-01")
        for status in ("in_progress", "done", "verified"):
            update_remediation_item(
                session, item_id=item.id, data=RemediationItemUpdate(status=status)
            )
        session.commit()
        # Still 1 of 5 asked (20 %) and 1 of 1 in Child Labour: high, not critical.
        assert stored(session, factory).risk_band == "high"
        assert session.get(RemediationItem, item.id).status == RemediationStatus.verified


class TestDemoData:
    def test_demo_assessments_are_published_repeatable_and_seeded_once(
        self, session: Session
    ) -> None:
        factories = [make_factory(session, programme_code=f"BW-DEMO-{n}") for n in range(3)]
        assert seed_demo_compliance(session, factories) == 3
        session.commit()
        assessments = session.exec(select(Assessment).order_by(col(Assessment.id))).all()
        per_factory = Counter(a.factory_id for a in assessments)
        assert set(per_factory) == {f.id for f in factories}
        assert set(per_factory.values()) <= {2, 3}
        assert {a.status for a in assessments} == {"published"}
        questions = len(catalogue_questions(session, version="2026.1"))
        asked = Counter(session.exec(select(Finding.assessment_id)).all())
        coverage = range(round(0.7 * questions), round(0.9 * questions) + 1)
        assert all(asked[a.id] in coverage for a in assessments)
        summaries = session.exec(select(ComplianceSummary)).all()
        assert {s.factory_id for s in summaries} == {f.id for f in factories}
        first_run = [(a.id, a.cycle, a.visit_start, asked[a.id]) for a in assessments]
        assert seed_demo_compliance(session, factories) == 0
        # The same keys give the same assessments on a fresh run.
        session.execute(delete(RemediationItem))
        session.execute(delete(Finding))
        session.execute(delete(ComplianceSummary))
        session.execute(delete(Assessment))
        assert seed_demo_compliance(session, factories) == 3
        again = session.exec(select(Assessment).order_by(col(Assessment.id))).all()
        asked = Counter(session.exec(select(Finding.assessment_id)).all())
        assert [(a.id, a.cycle, a.visit_start, asked[a.id]) for a in again] == first_run

"""Compliance summaries: computed when an assessment is published or retracted and on every
remediation change, in that change's transaction, and stored as the two encoded answers (full and
public) so that a read serves bytes and computes nothing. The arithmetic and the risk band's rule
are in `src.services.compliance_figures`.

Which assessment is summarised: the factory's latest published one (highest cycle, then latest
visit). A retracted assessment no longer counts, so retracting the latest falls back to the one
before; with none published the summary says so with nulls. The previous cycle is the latest
published assessment of a lower cycle; cluster changes and `previous_risk_band` compare with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import String, and_, bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from src.db import utcnow
from src.etags import etag_for
from src.models import Assessment, Client, ComplianceSummary, Factory, Finding
from src.models.assessments import AssessmentStatus, RemediationItem, RemediationStatus
from src.models.compliance_summaries import Disclosure, encode_cluster_counts
from src.prepared_reads import AwaitedReader
from src.services.access import (
    Principal,
    Visibility,
    client_revoked,
    consent_granted_bound,
    factory_visible_bound,
    not_found_factory,
    visibility_of,
    visibility_params,
)
from src.services.access_log import AccessLog
from src.services.catalogue import catalogue_questions
from src.services.compliance_figures import (
    ClusterTally,
    Figures,
    ItemState,
    Tally,
    encode_summaries,
    summary_read,
)
from src.services.events import EventType, emit


def _figures(session: Session, assessments: Sequence[Assessment]) -> dict[str, Figures]:
    """The figures of each assessment: one query for findings and items, one per catalogue."""
    if not assessments:
        return {}
    rows = session.execute(
        sa_select(
            col(Finding.assessment_id),
            col(Finding.question_id),
            col(Finding.compliant),
            col(RemediationItem.id),
            col(RemediationItem.status),
            col(RemediationItem.due_on),
        )
        .outerjoin(RemediationItem, col(RemediationItem.finding_id) == col(Finding.id))
        .where(col(Finding.assessment_id).in_([a.id for a in assessments]))
    ).all()
    found: dict[str, dict[int, tuple[bool, ItemState | None]]] = {a.id: {} for a in assessments}
    for assessment_id, question_id, compliant, item_id, status, due_on in rows:
        item = ItemState(item_id, RemediationStatus(status), due_on) if item_id else None
        found[assessment_id][question_id] = (compliant, item)
    catalogues = {
        version: catalogue_questions(session, version=version)
        for version in {a.catalogue_version for a in assessments}
    }
    result = {}
    for assessment in assessments:
        figures = Figures(assessment)
        findings = found[assessment.id]
        for question in catalogues[assessment.catalogue_version]:
            if question.id not in findings:
                continue
            compliant, item = findings[question.id]
            figures.overall.count(compliant)
            cluster = figures.clusters.setdefault(
                question.cluster_code,
                ClusterTally(name=question.cluster_name, category=question.cluster_category),
            )
            cluster.count(compliant)
            point = cluster.points.setdefault(question.point_code, (question.point_name, Tally()))
            point[1].count(compliant)
            if item is not None:
                figures.items.append(item)
            if question.critical and not compliant:
                figures.critical.append((question, item))
        result[assessment.id] = figures
    return result


def _published(session: Session, factory_id: str) -> list[Assessment]:
    return list(
        session.exec(
            select(Assessment)
            .where(
                col(Assessment.factory_id) == factory_id,
                col(Assessment.status) == AssessmentStatus.published,
            )
            .order_by(
                col(Assessment.cycle).desc(),
                col(Assessment.visit_start).desc(),
                col(Assessment.id).desc(),
            )
        ).all()
    )


def refresh_summary(session: Session, *, factory_id: str) -> ComplianceSummary:
    """Recomputes and stores the factory's summary (with its cluster counts); when it changed,
    also the factory's `updated_at` and copy of the risk band, and a `compliance_summary.updated`
    event.
    The factory row is locked first, so concurrent changes to one factory recompute its summary
    one after the other."""
    factory = session.exec(
        select(Factory).where(col(Factory.id) == factory_id).with_for_update()
    ).first()
    published = _published(session, factory_id)
    current = published[0] if published else None
    previous = next((a for a in published if a.cycle < current.cycle), None) if current else None
    figures = _figures(session, [a for a in (current, previous) if a is not None])
    current_figures = figures.get(current.id) if current else None
    previous_figures = figures.get(previous.id) if previous else None

    row = session.get(ComplianceSummary, factory_id)
    if row is not None:
        unchanged = encode_summaries(factory_id, current_figures, previous_figures, row.updated_at)
        if unchanged == (row.full_json, row.public_json):
            return row
    now = utcnow()
    full_json, public_json = encode_summaries(factory_id, current_figures, previous_figures, now)
    stored: dict[str, Any] = {
        "full_json": full_json,
        "public_json": public_json,
        "full_etag": etag_for(full_json),
        "public_etag": etag_for(public_json),
        "updated_at": now,
        "assessment_id": current.id if current else None,
        "cycle": current.cycle if current else None,
        "risk_band": current_figures.band if current_figures else None,
        "previous_risk_band": previous_figures.band if previous_figures else None,
        "open_critical_count": current_figures.open_critical if current_figures else 0,
        "cluster_counts": encode_cluster_counts(
            {
                code: (tally.asked, tally.non_compliant)
                for code, tally in (current_figures.clusters if current_figures else {}).items()
            }
        ),
    }
    if row is None:
        row = ComplianceSummary(factory_id=factory_id, **stored)
    else:
        for name, value in stored.items():
            setattr(row, name, value)
    session.add(row)
    if factory is not None:
        factory.updated_at = now
        factory.risk_band = row.risk_band
        session.add(factory)
    session.flush()
    emit(
        session,
        EventType.compliance_summary_updated,
        {
            "factory_id": factory_id,
            "assessment_id": row.assessment_id,
            "cycle": row.cycle,
            "risk_band": row.risk_band,
            "previous_risk_band": row.previous_risk_band,
        },
        factory_id=factory_id,
    )
    return row


@dataclass(frozen=True)
class StoredAnswer:
    body: bytes
    etag: str | None
    """None for an answer built on the spot (a factory with no summary yet)."""


@cache
def _summary_statement(shape: Visibility) -> Any:
    """The caller's client, visibility, consent and the stored answer to serve, in one statement
    built once per shape: a row for the client, with the factory's columns null where it is
    missing or hidden."""
    factory_id = bindparam("factory_id", type_=String)
    consented = consent_granted_bound(shape, factory_id)
    return (
        sa_select(
            col(Client.revoked_at),
            col(Factory.updated_at),
            consented,
            col(ComplianceSummary.full_json),
            col(ComplianceSummary.public_json),
            col(ComplianceSummary.full_etag),
            col(ComplianceSummary.public_etag),
        )
        .select_from(Client)
        .outerjoin(
            Factory,
            and_(col(Factory.id) == factory_id, factory_visible_bound(shape, col(Factory.id))),
        )
        .outerjoin(ComplianceSummary, col(ComplianceSummary.factory_id) == col(Factory.id))
        .where(col(Client.id) == bindparam("client_id", type_=String))
    )


async def summary_answer(
    reader: AwaitedReader, *, principal: Principal, factory_id: str, access_log: AccessLog
) -> StoredAnswer:
    """The stored answer for the caller: full with consent (a logged disclosure), public without.
    One statement checks the caller's client is not revoked and decides visibility, consent and
    which encoding to read, so the route may skip `resolve_principal`'s own query."""
    row = await reader.first(
        _summary_statement(visibility_of(principal)),
        visibility_params(principal) | {"factory_id": factory_id, "client_id": principal.client_id},
    )
    if row is None or row[0] is not None:
        raise client_revoked()
    _, factory_updated_at, full, full_body, public_body, full_etag, public_etag = row
    if factory_updated_at is None:
        raise not_found_factory()
    if full:
        access_log.record(
            principal,
            factory_id=factory_id,
            resource="compliance_summary",
            resource_id=factory_id,
        )
    body = full_body if full else public_body
    if body is None:
        disclosure = Disclosure.full if full else Disclosure.public
        empty = summary_read(
            factory_id, None, None, disclosure=disclosure, updated_at=factory_updated_at
        )
        return StoredAnswer(empty.model_dump_json().encode(), etag=None)
    return StoredAnswer(bytes(body), etag=full_etag if full else public_etag)

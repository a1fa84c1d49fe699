"""Compliance across one supply chain: risk bands, cluster rates, open critical issues, what got
worse, and the CSV export of its factories' summary figures. A fixed number of queries whatever
the chain's size: every figure is read from the precomputed summaries."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, and_, false, func, or_, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from src.db import utcnow
from src.models import (
    Assessment,
    Cluster,
    ClusterCount,
    ComplianceSummary,
    Factory,
    Question,
    RemediationItem,
    SupplyChain,
    SupplyChainLink,
)
from src.models.compliance_summaries import RiskBand
from src.models.supply_chain_compliance import (
    ClusterRate,
    CriticalIssue,
    RiskBandCounts,
    SupplyChainCompliance,
    WorsenedFactory,
)
from src.services.access import (
    Principal,
    active_on,
    consent_granted,
    subscription_active,
    supply_chain_readable,
)
from src.services.catalogue import current_version
from src.services.compliance_figures import UNRESOLVED
from src.services.errors import NotFound

BAND_ORDER = {RiskBand.low: 0, RiskBand.medium: 1, RiskBand.high: 2, RiskBand.critical: 3}
CSV_BATCH = 1000


def _require_chain(session: Session, principal: Principal, chain_id: str) -> bool:
    """Raises NotFound unless the caller may read the chain; answers whether the chain's owner
    is subscribed today, without which none of its factories is visible."""
    row = session.execute(
        sa_select(subscription_active(col(SupplyChain.org_id), utcnow().date())).where(
            col(SupplyChain.id) == chain_id, supply_chain_readable(principal)
        )
    ).first()
    if row is None:
        raise NotFound(f"No supply chain {chain_id}.")
    return bool(row[0])


def _chain_links(principal: Principal, chain_id: str, subscribed: bool) -> Any:
    """Conditions selecting the chain's active links to factories the caller sees.

    A readable chain with a subscribed owner shows every factory it actively links (that is
    what `factory_visible` asks of some link), so the check runs once for the chain instead of
    once per factory; an admin sees every link."""
    return and_(
        col(SupplyChainLink.supply_chain_id) == chain_id,
        active_on(SupplyChainLink.starts_on, SupplyChainLink.ends_on, utcnow().date()),  # type: ignore[arg-type]
        true() if subscribed or principal.is_admin else false(),
    )


def _linked(factory_id: Any, links: Any) -> Any:
    return and_(col(SupplyChainLink.factory_id) == factory_id, links)


def supply_chain_compliance(
    session: Session, *, principal: Principal, supply_chain_id: str
) -> SupplyChainCompliance:
    subscribed = _require_chain(session, principal, supply_chain_id)
    links = _chain_links(principal, supply_chain_id, subscribed)
    rows = session.exec(
        select(
            col(Factory.id),
            col(Factory.name),
            col(ComplianceSummary.risk_band),
            col(ComplianceSummary.previous_risk_band),
        )
        .select_from(Factory)
        .join(SupplyChainLink, _linked(col(Factory.id), links))
        .outerjoin(ComplianceSummary, col(ComplianceSummary.factory_id) == col(Factory.id))
        .order_by(col(Factory.id))
    ).all()
    # Bands stay the stored strings (RiskBand is a StrEnum, so they key BAND_ORDER as they are).
    bands = Counter(band or "unassessed" for _, _, band, _ in rows)
    worsened = []
    names = {}
    for factory_id, name, band, previous in rows:
        names[factory_id] = name
        if band and previous and BAND_ORDER[band] > BAND_ORDER[previous]:
            worsened.append(
                WorsenedFactory(
                    factory_id=factory_id,
                    factory_name=name,
                    previous_risk_band=previous,
                    risk_band=band,
                )
            )
    return SupplyChainCompliance(
        supply_chain_id=supply_chain_id,
        factories=len(rows),
        risk_bands=RiskBandCounts(**bands),
        clusters=_cluster_rates(session, links),
        open_critical_issues=_open_critical_issues(session, principal, links, names),
        worsened=worsened,
    )


def _cluster_names(session: Session) -> dict[str, str]:
    version = current_version(session)
    if version is None:
        return {}
    clusters = session.exec(
        select(Cluster)
        .where(col(Cluster.version) == version.version)
        .order_by(col(Cluster.position))
    ).all()
    return {cluster.code: cluster.name for cluster in clusters}


def _cluster_rates(session: Session, links: Any) -> list[ClusterRate]:
    totals = {
        code: (int(asked), int(non_compliant))
        for code, asked, non_compliant in session.exec(
            select(
                col(ClusterCount.cluster_code),
                func.sum(ClusterCount.asked),
                func.sum(ClusterCount.non_compliant),
            )
            .join(SupplyChainLink, _linked(col(ClusterCount.factory_id), links))
            .group_by(col(ClusterCount.cluster_code))
        ).all()
    }
    names = _cluster_names(session)
    codes = list(names) + sorted(set(totals) - set(names))
    rates = []
    for code in codes:
        asked, non_compliant = totals.get(code, (0, 0))
        rates.append(
            ClusterRate(
                code=code,
                name=names.get(code, code),
                asked=asked,
                non_compliant=non_compliant,
                rate=round(non_compliant / asked, 4) if asked else None,
            )
        )
    return rates


def _open_critical_issues(
    session: Session, principal: Principal, links: Any, names: dict[str, str]
) -> list[CriticalIssue]:
    """The open remediation items on critical questions of each factory's summarised assessment
    (as in its own summary); `names` are the chain's factories by id, read already."""
    today = utcnow().date()
    factory_id: Any = col(RemediationItem.factory_id)
    rows = session.execute(
        sa_select(
            col(RemediationItem.id),
            factory_id,
            col(Question.code),
            col(Question.text),
            col(RemediationItem.status),
            col(Assessment.visit_end),
        )
        .select_from(RemediationItem)
        .join(SupplyChainLink, _linked(factory_id, links))
        .join(
            ComplianceSummary,
            and_(
                col(ComplianceSummary.factory_id) == factory_id,
                col(ComplianceSummary.assessment_id) == col(RemediationItem.assessment_id),
            ),
        )
        .join(Question, col(Question.id) == col(RemediationItem.question_id))
        .join(Assessment, col(Assessment.id) == col(RemediationItem.assessment_id))
        .where(
            # the stored count lets factories without an open critical issue be skipped whole
            col(ComplianceSummary.open_critical_count) > 0,
            col(Question.critical).is_(True),
            col(RemediationItem.status).in_(UNRESOLVED),
            or_(col(Question.public).is_(True), consent_granted(principal, factory_id)),
        )
        .order_by(col(Assessment.visit_end), col(RemediationItem.id))
    ).all()
    return [
        CriticalIssue(
            remediation_item_id=item_id,
            factory_id=item_factory_id,
            factory_name=names[item_factory_id],
            question=code,
            text=text,
            status=status,
            opened_on=opened,
            age_days=(today - opened).days,
        )
        for item_id, item_factory_id, code, text, status, opened in rows
        # On PostgreSQL each statement sees the data as it began: a factory linked in between
        # is left for the next read rather than reported without its name.
        if item_factory_id in names
    ]


def export_supply_chain_csv(
    engine: Engine, *, principal: Principal, supply_chain_id: str
) -> Iterator[str]:
    """The chain's factories with their summary figures, one CSV row each, read in batches."""
    with Session(engine) as session:
        subscribed = _require_chain(session, principal, supply_chain_id)
        clusters = list(_cluster_names(session))
        links = _chain_links(principal, supply_chain_id, subscribed)
        yield _csv_line([
            "factory_id", "name", "country", "supplier_code", "risk_band", "previous_risk_band",
            "open_critical_issues", "cycle", *[f"non_compliance_{code}" for code in clusters],
        ])  # fmt: skip
        after = ""
        while True:
            rows = session.execute(
                sa_select(
                    col(Factory.id),
                    col(Factory.name),
                    col(Factory.country),
                    col(SupplyChainLink.supplier_code),
                    col(ComplianceSummary.risk_band),
                    col(ComplianceSummary.previous_risk_band),
                    col(ComplianceSummary.open_critical_count),
                )
                .add_columns(col(ComplianceSummary.cycle))
                .select_from(Factory)
                .join(SupplyChainLink, _linked(col(Factory.id), links))
                .outerjoin(ComplianceSummary, col(ComplianceSummary.factory_id) == col(Factory.id))
                .where(col(Factory.id) > after)
                .order_by(col(Factory.id))
                .limit(CSV_BATCH)
            ).all()
            if not rows:
                return
            rates = _rates_by_factory(session, [row[0] for row in rows])
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            for row in rows:
                factory_rates = rates.get(row[0], {})
                writer.writerow(
                    [
                        *("" if value is None else value for value in row),
                        *(factory_rates.get(code, "") for code in clusters),
                    ]
                )
            yield out.getvalue()
            after = rows[-1][0]


def _rates_by_factory(session: Session, factory_ids: list[str]) -> dict[str, dict[str, float]]:
    rates: dict[str, dict[str, float]] = {}
    for factory_id, code, asked, non_compliant in session.exec(
        select(
            col(ClusterCount.factory_id),
            col(ClusterCount.cluster_code),
            col(ClusterCount.asked),
            col(ClusterCount.non_compliant),
        ).where(col(ClusterCount.factory_id).in_(factory_ids))
    ).all():
        if asked:
            rates.setdefault(factory_id, {})[code] = round(non_compliant / asked, 4)
    return rates


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()

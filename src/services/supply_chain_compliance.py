"""Compliance across one supply chain: risk bands, cluster rates, open critical issues, what got
worse, and the CSV export of its factories' summary figures. A fixed number of queries whatever
the chain's size: every figure is read from the precomputed summaries."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Engine, String, and_, bindparam, false, or_, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from src.db import utcnow
from src.models import (
    Assessment,
    CatalogueVersion,
    Cluster,
    ComplianceSummary,
    Factory,
    Question,
    RemediationItem,
    SupplyChain,
    SupplyChainLink,
)
from src.models.compliance_summaries import RiskBand, decode_cluster_counts
from src.models.supply_chain_compliance import RiskBandCounts
from src.prepared_reads import Reader
from src.services.access import (
    VISIBLE_ON,
    Principal,
    Visibility,
    active_on,
    consent_granted_bound,
    subscription_active,
    supply_chain_readable_bound,
    visibility_of,
    visibility_params,
)
from src.services.catalogue import NEWEST_FIRST
from src.services.compliance_figures import UNRESOLVED
from src.services.errors import NotFound

BAND_ORDER = {RiskBand.low: 0, RiskBand.medium: 1, RiskBand.high: 2, RiskBand.critical: 3}
CSV_BATCH = 1000


CHAIN = bindparam("chain_id", type_=String)


def _chain_links(factories_show: bool) -> ColumnElement[bool]:
    """Conditions selecting the active links of the chain `:chain_id` on `:visible_on`.

    A readable chain with a subscribed owner shows every factory it actively links (that is
    what `factory_visible` asks of some link), so the check runs once for the chain (see
    `_require_chain`) instead of once per factory."""
    return and_(
        col(SupplyChainLink.supply_chain_id) == CHAIN,
        active_on(SupplyChainLink.starts_on, SupplyChainLink.ends_on, VISIBLE_ON),  # type: ignore[arg-type]
        true() if factories_show else false(),
    )


def _linked(factory_id: Any, factories_show: bool) -> ColumnElement[bool]:
    return and_(col(SupplyChainLink.factory_id) == factory_id, _chain_links(factories_show))


@dataclass(frozen=True)
class _ChainRead:
    """One aggregate's reads: the shape its statements are built for, and their parameters."""

    shape: Visibility
    factories_show: bool
    params: dict[str, Any]

    @classmethod
    def of(cls, principal: Principal, chain_id: str, *, factories_show: bool) -> _ChainRead:
        params = visibility_params(principal) | {"chain_id": chain_id}
        return cls(visibility_of(principal), factories_show, params)


@cache
def _chain_statement(shape: Visibility) -> Any:
    return sa_select(subscription_active(col(SupplyChain.org_id), VISIBLE_ON)).where(
        col(SupplyChain.id) == CHAIN, supply_chain_readable_bound(shape)
    )


def _require_chain(reader: Reader, principal: Principal, chain_id: str) -> _ChainRead:
    """The chain's reads, or NotFound unless the caller may read the chain. Its factories show
    when its owner is subscribed today (without which none of them is visible), or to the
    programme."""
    read = _ChainRead.of(principal, chain_id, factories_show=principal.is_admin)
    row = reader.first(_chain_statement(read.shape), read.params)
    if row is None:
        raise NotFound(f"No supply chain {chain_id}.")
    return replace(read, factories_show=read.factories_show or bool(row[0]))


@cache
def _bands_statement(factories_show: bool) -> Any:
    return (
        sa_select(
            col(Factory.id),
            col(Factory.name),
            col(ComplianceSummary.risk_band),
            col(ComplianceSummary.previous_risk_band),
            col(ComplianceSummary.cluster_counts),
        )
        .select_from(Factory)
        .join(SupplyChainLink, _linked(col(Factory.id), factories_show))
        .outerjoin(ComplianceSummary, col(ComplianceSummary.factory_id) == col(Factory.id))
        .order_by(col(Factory.id))
    )


def compliance_body(session: Session, *, principal: Principal, supply_chain_id: str) -> bytes:
    """The answer (a `SupplyChainCompliance`), encoded once: a large chain's ~2,000 nested
    objects cost more to build as models than to read."""
    reader = Reader.of_session(session)
    read = _require_chain(reader, principal, supply_chain_id)
    rows = reader.all(_bands_statement(read.factories_show), read.params)
    # Bands stay the stored strings (RiskBand is a StrEnum, so they key BAND_ORDER as they are).
    bands = Counter(band or "unassessed" for _, _, band, _, _ in rows)
    names = {factory_id: name for factory_id, name, _, _, _ in rows}
    worsened = [
        {
            "factory_id": factory_id,
            "factory_name": name,
            "previous_risk_band": previous,
            "risk_band": band,
        }
        for factory_id, name, band, previous, _ in rows
        if band and previous and BAND_ORDER[band] > BAND_ORDER[previous]
    ]
    answer = {
        "supply_chain_id": supply_chain_id,
        "factories": len(rows),
        "risk_bands": {band: bands[band] for band in RiskBandCounts.model_fields},
        "clusters": _cluster_rates(reader, [counts for *_, counts in rows if counts]),
        "open_critical_issues": _open_critical_issues(reader, read, names),
        "worsened": worsened,
    }
    return orjson.dumps(answer)


@cache
def _cluster_names_statement() -> Any:
    newest = sa_select(col(CatalogueVersion.version)).order_by(*NEWEST_FIRST).limit(1)
    return (
        sa_select(col(Cluster.code), col(Cluster.name))
        .where(col(Cluster.version) == newest.scalar_subquery())
        .order_by(col(Cluster.position))
    )


def _cluster_names(reader: Reader) -> dict[str, str]:
    """The current catalogue version's cluster names by code, in the catalogue's order."""
    return dict(reader.all(_cluster_names_statement(), {}))


def _cluster_rates(reader: Reader, encoded_counts: list[bytes]) -> list[dict[str, Any]]:
    """Each cluster's questions asked and found non-compliant over the chain's factories, added
    up from their summaries' `cluster_counts`, and the rate they give."""
    totals: dict[str, list[int]] = {}
    for encoded in encoded_counts:
        for code, (asked, non_compliant) in decode_cluster_counts(encoded).items():
            total = totals.setdefault(code, [0, 0])
            total[0] += asked
            total[1] += non_compliant
    names = _cluster_names(reader)
    codes = list(names) + sorted(set(totals) - set(names))
    rates = []
    for code in codes:
        asked, non_compliant = totals.get(code, (0, 0))
        rates.append(
            {
                "code": code,
                "name": names.get(code, code),
                "asked": asked,
                "non_compliant": non_compliant,
                "rate": round(non_compliant / asked, 4) if asked else None,
            }
        )
    return rates


@cache
def _critical_issues_statement(shape: Visibility, factories_show: bool) -> Any:
    factory_id: Any = col(RemediationItem.factory_id)
    return (
        sa_select(
            col(RemediationItem.id),
            factory_id,
            col(Question.code),
            col(Question.text),
            col(RemediationItem.status),
            col(Assessment.visit_end),
        )
        .select_from(RemediationItem)
        .join(SupplyChainLink, _linked(factory_id, factories_show))
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
            # the items' own copy, which `ix_remediation_items_critical_assessment_id` indexes
            col(RemediationItem.critical).is_(True),
            col(RemediationItem.status).in_(UNRESOLVED),
            or_(col(Question.public).is_(True), consent_granted_bound(shape, factory_id)),
        )
        .order_by(col(Assessment.visit_end), col(RemediationItem.id))
    )


def _open_critical_issues(
    reader: Reader, read: _ChainRead, names: dict[str, str]
) -> list[dict[str, Any]]:
    """The open remediation items on critical questions of each factory's summarised assessment
    (as in its own summary); `names` are the chain's factories by id, read already."""
    today = utcnow().date()
    rows = reader.all(_critical_issues_statement(read.shape, read.factories_show), read.params)
    return [
        {
            "remediation_item_id": item_id,
            "factory_id": factory_id,
            "factory_name": names[factory_id],
            "question": code,
            "text": text,
            "status": status,
            "opened_on": opened,
            "age_days": (today - opened).days,
        }
        for item_id, factory_id, code, text, status, opened in rows
        # On PostgreSQL each statement sees the data as it began: a factory linked in between
        # is left for the next read rather than reported without its name.
        if factory_id in names
    ]


def export_supply_chain_csv(
    engine: Engine, *, principal: Principal, supply_chain_id: str
) -> Iterator[str]:
    """The chain's factories with their summary figures, one CSV row each, read in batches."""
    with Session(engine) as session:
        reader = Reader.of_session(session)
        read = _require_chain(reader, principal, supply_chain_id)
        clusters = list(_cluster_names(reader))
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
                .add_columns(col(ComplianceSummary.cycle), col(ComplianceSummary.cluster_counts))
                .select_from(Factory)
                .join(SupplyChainLink, _linked(col(Factory.id), read.factories_show))
                .outerjoin(ComplianceSummary, col(ComplianceSummary.factory_id) == col(Factory.id))
                .where(col(Factory.id) > after)
                .order_by(col(Factory.id))
                .limit(CSV_BATCH),
                read.params,
            ).all()
            if not rows:
                return
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            for *figures, counts in rows:
                rates = _rates(counts or b"{}")
                writer.writerow(
                    [
                        *("" if value is None else value for value in figures),
                        *(rates.get(code, "") for code in clusters),
                    ]
                )
            yield out.getvalue()
            after = rows[-1][0]


def _rates(encoded_counts: bytes) -> dict[str, float]:
    """One factory's non-compliance rate per cluster asked about."""
    return {
        code: round(non_compliant / asked, 4)
        for code, (asked, non_compliant) in decode_cluster_counts(encoded_counts).items()
        if asked
    }


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()

"""The answer to `GET /v1/supply-chains/{id}/compliance`."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class RiskBandCounts(BaseModel):
    low: int = 0
    medium: int = 0
    high: int = 0
    critical: int = 0
    unassessed: int = Field(default=0, description="No published assessment yet")


class ClusterRate(BaseModel):
    code: str
    name: str
    asked: int
    non_compliant: int
    rate: float | None = Field(description="non_compliant / asked over the chain's factories")


class CriticalIssue(BaseModel):
    remediation_item_id: str
    factory_id: str
    factory_name: str
    question: str
    text: str
    status: str
    opened_on: dt.date
    age_days: int


class WorsenedFactory(BaseModel):
    factory_id: str
    factory_name: str
    previous_risk_band: str
    risk_band: str


class SupplyChainCompliance(BaseModel):
    supply_chain_id: str
    factories: int
    risk_bands: RiskBandCounts
    clusters: list[ClusterRate]
    open_critical_issues: list[CriticalIssue] = Field(
        description="Oldest first; issues on non-public questions only where the factory consents"
    )
    worsened: list[WorsenedFactory] = Field(
        description="Factories whose risk band got worse since their previous published cycle"
    )

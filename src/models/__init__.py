"""Every table, imported so that `SQLModel.metadata` knows them all (Alembic reads it)."""

from src.models.assessments import Assessment, Finding, RemediationItem
from src.models.catalogue import CatalogueVersion, Cluster, CompliancePoint, Question
from src.models.clients import Client, SigningKey
from src.models.compliance_summaries import ComplianceSummary
from src.models.consents import AccessLogEntry, Consent
from src.models.events import Event
from src.models.factories import Factory
from src.models.idempotency import IdempotencyKey
from src.models.imports import Import
from src.models.organizations import Delegation, Organization, Subscription
from src.models.scorecards import Scorecard, ScorecardPeriod
from src.models.supply_chains import SupplyChain, SupplyChainLink
from src.models.surveys import SurveyQuestion, SurveyResponse
from src.models.webhooks import Delivery, DeliveryAttempt, WebhookEndpoint

__all__ = [
    "AccessLogEntry",
    "Assessment",
    "CatalogueVersion",
    "Client",
    "Cluster",
    "CompliancePoint",
    "ComplianceSummary",
    "Consent",
    "Delegation",
    "Delivery",
    "DeliveryAttempt",
    "Event",
    "Factory",
    "Finding",
    "IdempotencyKey",
    "Import",
    "Organization",
    "Question",
    "RemediationItem",
    "Scorecard",
    "ScorecardPeriod",
    "SigningKey",
    "Subscription",
    "SupplyChain",
    "SupplyChainLink",
    "SurveyQuestion",
    "SurveyResponse",
    "WebhookEndpoint",
]

"""Full-disclosure reads with a buffered access log: written at the flush (and at shutdown),
each entry keeping the time of its read."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from src.config import Settings
from src.db import utcnow
from src.main import create_app
from src.models import AccessLogEntry
from src.models.organizations import OrgKind
from src.services.access import Principal
from src.services.access_log import AccessLog
from tests.api.test_assessments import access_log
from tests.api.test_compliance_summary import url, world
from tests.builders import bearer

__all__ = ["world"]


def test_buffered_reads_are_written_at_the_flush_and_at_shutdown(
    settings: Settings, engine: Engine, session: Session, world: dict[str, Any]
) -> None:
    buffered = settings.model_copy(update={"access_log_flush_seconds": 60})
    app = create_app(buffered, engine=engine)
    factory = world["factory"]
    entry = ("compliance_summary", factory.id, factory.id)
    with TestClient(app) as client:
        headers = bearer(client, world["reader"])
        read_from = utcnow()
        assert client.get(url(factory), headers=headers).status_code == 200
        read_until = utcnow()
        assert access_log(session) == []
        app.state.access_log.flush()
        assert access_log(session) == [entry]
        logged = session.exec(select(AccessLogEntry)).one()
        assert read_from <= logged.created_at <= read_until
        assert client.get(url(factory), headers=headers).status_code == 200
        assert access_log(session) == [entry]
    assert access_log(session) == [entry, entry]


def test_a_flush_larger_than_one_statement_writes_every_entry_once(
    engine: Engine, session: Session, world: dict[str, Any]
) -> None:
    """On SQLite a flush goes as multi-row INSERTs of 1,000 rows: 2,345 entries take three."""
    log = AccessLog(engine, flush_seconds=60)
    factory, reader = world["factory"], world["reader"].client
    principal = Principal(
        client_id=reader.id,
        org_id=reader.org_id,
        org_kind=OrgKind.buyer,
        scopes=frozenset({"compliance:read"}),
        supply_chain_ids=(),
    )
    for number in range(2345):
        log.record(principal, factory_id=factory.id, resource="assessment", resource_id=str(number))
    log.close()
    logged = session.exec(select(AccessLogEntry.resource_id, AccessLogEntry.client_id)).all()
    assert sorted(int(resource_id) for resource_id, _ in logged) == list(range(2345))
    assert {client_id for _, client_id in logged} == {reader.id}

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

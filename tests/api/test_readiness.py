"""`/readyz` reports an unreachable or unmigrated database with 503, and recovers by itself."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from fastapi.testclient import TestClient

from src.config import Settings
from src.main import create_app
from tests.conftest import alembic_config


def test_not_ready_until_migrated_then_ready_without_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with TestClient(create_app(Settings(database_url=url))) as client:
        before = client.get("/readyz")
        assert before.status_code == 503
        assert before.headers["content-type"] == "application/problem+json"
        assert before.headers["retry-after"] == "5"
        assert before.json()["detail"].startswith("database unreachable or not migrated")
        command.upgrade(alembic_config(url), "head")
        assert client.get("/readyz").status_code == 200


def test_behind_on_migrations_is_not_ready(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    command.upgrade(alembic_config(url), "head")
    command.downgrade(alembic_config(url), "base")
    with TestClient(create_app(Settings(database_url=url))) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "expected" in response.json()["detail"]

"""Test harness: one migrated database per run (a SQLite file, or a fresh PostgreSQL database when
WEFT_TEST_DATABASE_URL is set), emptied after every test; the real app over the real HTTP stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel

from src.config import PROJECT_ROOT, Settings
from src.db import make_engine, temporary_database, transaction
from src.main import create_app
from src.services.catalogue import load_catalogue, load_survey_questions

REFERENCE_TABLES = {
    "alembic_version",
    "catalogue_versions",
    "clusters",
    "compliance_points",
    "questions",
    "survey_questions",
    "signing_keys",
}


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server_url = os.environ.get("WEFT_TEST_DATABASE_URL")
    if not server_url:
        path: Path = tmp_path_factory.mktemp("db") / "weft-test.db"
        yield f"sqlite:///{path}"
        return
    with temporary_database(server_url, prefix="weft_test") as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        token_issuer="https://weft.test",
        token_audience="weft-test",
        webhook_allow_insecure=True,
        webhook_allow_networks=["127.0.0.0/8", "::1/128"],  # type: ignore[list-item]
        access_log_flush_seconds=0,
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    command.upgrade(alembic_config(settings.database_url), "head")
    engine = make_engine(settings.database_url)
    with transaction(engine) as session:
        load_catalogue(session)
        load_survey_questions(session)
    yield engine
    engine.dispose()


def _empty_tables(engine: Engine) -> None:
    tables = [
        t for t in reversed(SQLModel.metadata.sorted_tables) if t.name not in REFERENCE_TABLES
    ]
    # DELETE, children first: on tables this small it is far quicker than TRUNCATE on PostgreSQL
    with engine.begin() as connection:
        for table in tables:
            connection.execute(table.delete())


@pytest.fixture(autouse=True)
def _clean_database(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "engine" in request.fixturenames:
        _empty_tables(request.getfixturevalue("engine"))


@pytest.fixture(scope="session")
def app(settings: Settings, engine: Engine) -> FastAPI:
    return create_app(settings, engine=engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """For arranging data: builders flush, and the test commits before calling the API."""
    with Session(engine, expire_on_commit=False) as db_session:
        yield db_session

"""The migrations build exactly the schema the models describe, and go down as well as up."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

import src.models  # noqa: F401  (every table on the metadata)
from src.db import transaction
from src.services.catalogue import load_catalogue, load_survey_questions
from tests.conftest import alembic_config


def test_autogenerate_finds_no_difference_between_migrations_and_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_downgrade_to_base_and_upgrade_again(database_url: str, engine: Engine) -> None:
    config = alembic_config(database_url)
    command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "head")
    assert "factories" in inspect(engine).get_table_names()
    with transaction(engine) as session:  # the reference data other tests rely on
        load_catalogue(session)
        load_survey_questions(session)

"""The migrations build exactly the schema the models describe, and go down as well as up."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, SQLModel

import src.models  # noqa: F401  (every table on the metadata)
from src.db import transaction, utcnow
from src.etags import etag_for
from src.models import ComplianceSummary
from src.services.catalogue import load_catalogue, load_survey_questions
from tests.builders import make_factory
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


def test_summaries_stored_before_0008_get_the_entity_tags_of_their_answers(
    database_url: str, engine: Engine
) -> None:
    config = alembic_config(database_url)
    command.downgrade(config, "0007")
    try:
        with transaction(engine) as session:
            factory_id = make_factory(session).id
        full, public = b'{"disclosure":"full"}', b'{"disclosure":"public"}'
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO compliance_summaries (factory_id, open_critical_count,"
                    " full_json, public_json, updated_at) VALUES (:id, 0, :full, :public, :at)"
                ),
                {"id": factory_id, "full": full, "public": public, "at": utcnow()},
            )
    finally:
        command.upgrade(config, "head")
    with Session(engine) as session:
        stored = session.get(ComplianceSummary, factory_id)
    assert stored is not None
    assert (stored.full_etag, stored.public_etag) == (etag_for(full), etag_for(public))

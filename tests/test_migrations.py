"""The migrations build exactly the schema the models describe, and go down as well as up."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, bindparam, inspect, text
from sqlmodel import Session, SQLModel, col, select

import src.models  # noqa: F401  (every table on the metadata)
from src.db import UTCDateTime, transaction, utcnow
from src.ids import new_id
from src.models import ComplianceSummary, Factory, Question, RemediationItem, SupplyChainLink
from src.models.compliance_summaries import decode_cluster_counts
from src.models.factories import ITEM_FIELDS, encode_item
from src.services.catalogue import load_catalogue, load_survey_questions
from tests.builders import make_buyer, make_supply_chain
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


@contextmanager
def migrated_down_to(database_url: str, revision: str) -> Iterator[None]:
    """The schema at `revision` while the block runs, then at head again, whatever happens."""
    config = alembic_config(database_url)
    command.downgrade(config, revision)
    try:
        yield
    finally:
        command.upgrade(config, "head")


def insert_row(engine: Engine, table: str, row: dict[str, object]) -> None:
    """A row inserted with SQL, as a schema older than the models has it."""
    insert = text(
        f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + name for name in row)})"
    ).bindparams(
        *(
            bindparam(name, type_=UTCDateTime)
            for name, value in row.items()
            if isinstance(value, dt.datetime)
        )
    )
    with engine.begin() as connection:
        connection.execute(insert, row)


def insert_factory_row(engine: Engine, **values: object) -> str:
    """A factory row with the columns' defaults (and no `item_json`, which 0009 added)."""
    row: dict[str, object] = {
        "id": new_id("fac"), "programme_code": None, "name": "A factory", "country": "VN",
        "address": "", "os_id": None, "sector": "garment", "workers_total": 0,
        "workers_women": 0, "status": "enrolled", "enrolled_on": None, "created_at": utcnow(),
        "updated_at": utcnow(),
    } | values  # fmt: skip
    insert_row(engine, "factories", row)
    return str(row["id"])


def test_factories_stored_before_0009_get_their_encoded_fields(
    database_url: str, engine: Engine
) -> None:
    with migrated_down_to(database_url, "0008"):
        factory_id = insert_factory_row(
            engine, name="Bến Cát Knits", os_id="VN2024000000001", enrolled_on=dt.date(2019, 3, 4),
            workers_total=1200, workers_women=800, status="active",
        )  # fmt: skip
    with Session(engine) as session:
        stored = session.get(Factory, factory_id)
        assert stored is not None
        fields = {name: getattr(stored, name) for name in ITEM_FIELDS}
    assert stored.item_json == encode_item(fields)
    assert orjson.loads(stored.item_json)["name"] == "Bến Cát Knits"


def test_summaries_stored_before_0008_get_the_entity_tags_of_their_answers(
    database_url: str, engine: Engine
) -> None:
    with migrated_down_to(database_url, "0007"):
        factory_id = insert_factory_row(engine, name="Tagged Garments")
        full, public = b'{"disclosure":"full"}', b'{"disclosure":"public"}'
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO compliance_summaries (factory_id, open_critical_count,"
                    " full_json, public_json, updated_at) VALUES (:id, 0, :full, :public, :at)"
                ),
                {"id": factory_id, "full": full, "public": public, "at": utcnow()},
            )
    with Session(engine) as session:
        stored = session.get(ComplianceSummary, factory_id)
    assert stored is not None
    # The tags the conditional-GET middleware gave these answers at that revision (SHA-256), so
    # that clients' cached tags stayed valid.
    tags = tuple(f'"{hashlib.sha256(body).hexdigest()[:32]}"' for body in (full, public))
    assert (stored.full_etag, stored.public_etag) == tags


def test_links_stored_before_0010_get_their_factorys_updated_at_and_their_encoding(
    database_url: str, engine: Engine
) -> None:
    with migrated_down_to(database_url, "0009"):
        updated_at = utcnow() - dt.timedelta(days=1)
        factory_id = insert_factory_row(engine, item_json=b"{}", updated_at=updated_at)
        with transaction(engine) as session:
            chain_id = make_supply_chain(session, make_buyer(session)).id
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO supply_chain_links (id, supply_chain_id, factory_id,"
                    " supplier_code, starts_on, created_at, updated_at)"
                    " VALUES (:id, :chain, :factory, 'V-0001', :day, :at, :at)"
                ).bindparams(bindparam("at", type_=UTCDateTime)),
                {
                    "id": new_id("lnk"),
                    "chain": chain_id,
                    "factory": factory_id,
                    "day": dt.date(2026, 1, 5),
                    "at": utcnow(),
                },  # fmt: skip
            )
    with Session(engine) as session:
        stored = session.exec(
            select(SupplyChainLink).where(col(SupplyChainLink.factory_id) == factory_id)
        ).one()
    assert stored.factory_updated_at == updated_at
    assert orjson.loads(stored.code_json or b"") == {
        "supply_chain_id": chain_id,
        "supplier_code": "V-0001",
    }


def test_factories_summarised_before_0012_get_their_summarys_risk_band(
    database_url: str, engine: Engine
) -> None:
    with migrated_down_to(database_url, "0011"):
        banded = insert_factory_row(engine, item_json=b"{}")
        unassessed = insert_factory_row(engine, item_json=b"{}")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO compliance_summaries (factory_id, risk_band, open_critical_count,"
                    " full_json, public_json, updated_at, full_etag, public_etag)"
                    " VALUES (:id, 'high', 0, '{}', '{}', :at, 'e', 'e')"
                ).bindparams(bindparam("at", type_=UTCDateTime)),
                {"id": banded, "at": utcnow()},
            )
    with Session(engine) as session:
        statement = select(col(Factory.id), col(Factory.risk_band))
        bands = dict(session.exec(statement.where(col(Factory.id).in_([banded, unassessed]))).all())
    assert bands == {banded: "high", unassessed: None}


def test_remediation_items_made_before_0013_get_whether_their_question_is_critical(
    database_url: str, engine: Engine
) -> None:
    with Session(engine) as session:
        critical, other = (
            session.exec(select(Question).where(col(Question.critical).is_(flag))).first()
            for flag in (True, False)
        )
    assert critical is not None
    assert other is not None
    with migrated_down_to(database_url, "0012"):
        factory_id = insert_factory_row(engine, item_json=b"{}")
        assessment_id = new_id("asm")
        insert_row(engine, "assessments", {
            "id": assessment_id, "factory_id": factory_id, "catalogue_version": critical.version,
            "cycle": 1, "kind": "assessment", "announced": True, "visit_start": dt.date(2026, 3, 1),
            "visit_end": dt.date(2026, 3, 2), "status": "published", "published_at": utcnow(),
            "retracted_at": None, "created_at": utcnow(), "updated_at": utcnow(),
        })  # fmt: skip
        items = {}
        for number, question in enumerate((critical, other), start=1):
            finding_id = 900_000 + number
            insert_row(engine, "findings", {
                "id": finding_id, "assessment_id": assessment_id, "question_id": question.id,
                "compliant": False, "note": None,
            })  # fmt: skip
            items[question.id] = new_id("rem")
            insert_row(engine, "remediation_items", {
                "id": items[question.id], "factory_id": factory_id, "assessment_id": assessment_id,
                "finding_id": finding_id, "question_id": question.id, "action": "", "owner": "",
                "due_on": None, "status": "open", "verified_at": None, "created_at": utcnow(),
                "updated_at": utcnow(),
            })  # fmt: skip
    with Session(engine) as session:
        statement = select(col(RemediationItem.id), col(RemediationItem.critical))
        flags = dict(
            session.exec(statement.where(col(RemediationItem.id).in_(items.values()))).all()
        )
    assert flags == {items[critical.id]: True, items[other.id]: False}


def test_0014_puts_the_risk_band_in_factories_encodings_and_takes_it_out_again(
    database_url: str, engine: Engine
) -> None:
    encoded = {"high": b'{"name":"B\xe1\xba\xbfn C\xc3\xa1t"}', None: b'{"name":"Plain"}'}

    def stored() -> dict[str | None, bytes]:
        with Session(engine) as session:
            rows = session.exec(
                select(col(Factory.risk_band), col(Factory.item_json)).where(
                    col(Factory.id).in_(ids)
                )
            ).all()
        return {band: bytes(item_json or b"") for band, item_json in rows}

    with migrated_down_to(database_url, "0013"):
        ids = [
            insert_factory_row(engine, item_json=item, risk_band=band)
            for band, item in encoded.items()
        ]
    assert stored() == {
        "high": b'{"name":"B\xe1\xba\xbfn C\xc3\xa1t","risk_band":"high"}',
        None: b'{"name":"Plain","risk_band":null}',
    }
    with migrated_down_to(database_url, "0013"):
        assert stored() == encoded


def test_0015_moves_summaries_cluster_counts_into_them_and_back_out(
    database_url: str, engine: Engine
) -> None:
    counts = {("CL", 10, 2), ("CO", 20, 5)}
    with migrated_down_to(database_url, "0014"):
        counted, uncounted = (insert_factory_row(engine, item_json=b"{}") for _ in range(2))
        for factory_id in (counted, uncounted):
            insert_row(engine, "compliance_summaries", {
                "factory_id": factory_id, "open_critical_count": 0, "full_json": b"{}",
                "public_json": b"{}", "updated_at": utcnow(), "full_etag": "e", "public_etag": "e",
            })  # fmt: skip
        for code, asked, non_compliant in counts:
            insert_row(engine, "summary_cluster_counts", {
                "factory_id": counted, "cluster_code": code, "asked": asked,
                "non_compliant": non_compliant,
            })  # fmt: skip
    with Session(engine) as session:
        stored = {
            factory_id: decode_cluster_counts(encoded)
            for factory_id, encoded in session.exec(
                select(
                    col(ComplianceSummary.factory_id), col(ComplianceSummary.cluster_counts)
                ).where(col(ComplianceSummary.factory_id).in_([counted, uncounted]))
            ).all()
        }
    assert stored == {counted: {"CL": [10, 2], "CO": [20, 5]}, uncounted: {}}
    with migrated_down_to(database_url, "0014"), engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT cluster_code, asked, non_compliant FROM summary_cluster_counts"
                " WHERE factory_id IN (:counted, :uncounted)"
            ),
            {"counted": counted, "uncounted": uncounted},
        ).all()
        assert {tuple(row) for row in rows} == counts

"""Readiness: the database answers and its schema is at the newest migration."""

from __future__ import annotations

from functools import lru_cache

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from src.config import PROJECT_ROOT


@lru_cache
def head_revision() -> str | None:
    script = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini")))
    return script.get_current_head()


def readiness_problem(engine: Engine) -> str | None:
    """None when ready, else a sentence saying what is wrong."""
    try:
        with engine.connect() as connection:
            current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        return f"database unreachable or not migrated: {type(exc).__name__}"
    head = head_revision()
    if current != head:
        return f"database schema at {current or 'nothing'}, expected {head}; run `weft db upgrade`"
    return None

"""Counting the SQL statements a block runs, for the tests that no endpoint issues a query per
row."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    """The statements run while the block runs: SQLAlchemy's, and those of prepared reads."""
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            statements.append(record.getMessage())

    prepared, recorder, level = logging.getLogger("weft.sql"), Recorder(), logging.DEBUG
    previous_level = prepared.level
    prepared.addHandler(recorder)
    prepared.setLevel(level)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
        prepared.removeHandler(recorder)
        prepared.setLevel(previous_level)

"""The access log of full-disclosure reads, written in bulk off the read's path.

Logging each read in its own transaction makes every full-disclosure read a writer, and writers
take turns (on SQLite, one at a time). With `access_log_flush_seconds` above 0 the entries, each
stamped with the time of its read, wait in a per-process buffer that a background thread inserts
in one transaction at least that often, and once more when the app shuts down. The trade-off: an
entry appears in the log up to that many seconds after the read, and a crash loses the entries of
the last interval. With 0 each entry is written at once, in a transaction of its own, before the
read's answer is sent."""

from __future__ import annotations

import logging
import threading
from operator import itemgetter
from typing import Any

from sqlalchemy import Engine
from sqlmodel import SQLModel

from src.db import copy_rows, insert_rows
from src.models import AccessLogEntry
from src.services.access import Principal, disclosure_values

logger = logging.getLogger(__name__)

ACCESS_LOG = SQLModel.metadata.tables[str(AccessLogEntry.__tablename__)]
# The columns of an entry, as `disclosure_values` gives them (the id is the table's own).
LOGGED = ("factory_id", "org_id", "client_id", "resource", "resource_id", "created_at")


class AccessLog:
    """Where full-disclosure reads are recorded: one per process, shared by every request."""

    def __init__(self, engine: Engine, *, flush_seconds: float) -> None:
        self._engine = engine
        self._flush_seconds = flush_seconds
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def record(
        self, principal: Principal, *, factory_id: str, resource: str, resource_id: str
    ) -> None:
        values = disclosure_values(
            principal, factory_id=factory_id, resource=resource, resource_id=resource_id
        )
        if values is None:
            return
        if not self._flush_seconds:
            self._write([values])
            return
        with self._lock:
            self._pending.append(values)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="access-log-flush", daemon=True
                )
                self._thread.start()

    def flush(self) -> None:
        """Writes every buffered entry now, in one transaction."""
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return
        try:
            self._write(rows)
        except Exception:
            with self._lock:
                self._pending[:0] = rows
            raise

    def _write(self, rows: list[dict[str, Any]]) -> None:
        # Written by COPY or multi-row INSERTs: the flushing thread holds the GIL while it
        # converts rows, and under summary load an executemany took an eighth of the worker's
        # time on PostgreSQL, SQLAlchemy's batched INSERTs a twelfth on SQLite.
        entries = list(map(itemgetter(*LOGGED), rows))
        with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                copy_rows(connection, ACCESS_LOG, LOGGED, entries)
            else:
                insert_rows(connection, ACCESS_LOG, LOGGED, entries)

    def close(self) -> None:
        """Stops the background thread and writes what is left."""
        self._stopping.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stopping.wait(self._flush_seconds):
            try:
                self.flush()
            except Exception:
                # The batch went back to the buffer: the next round tries it again.
                logger.exception("writing the access log failed")

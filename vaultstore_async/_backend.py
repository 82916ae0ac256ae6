"""The one seam between the store and the database.

It owns the `databases.Database`, the dialect, connections, transactions,
exact row counts and the mapping of every driver error to our exceptions.
Nothing above this module imports a driver.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import databases

from . import _drivers as driver
from ._dialect import Dialect, MySQLDialect, PostgresDialect
from ._drivers import UniqueViolation, translate
from ._errors import (
    BackendError,
    StoreClosedError,
    ValidationError,
    VaultStoreError,
)
from ._stats import Stats

logger = logging.getLogger("vaultstore_async")

__all__ = ["Backend", "UniqueViolation", "translate"]

SQLITE_MAX_CONNECTIONS = 64
# Ids of the backends whose SQLite slot this task already holds, so nested
# statements of one operation do not wait for a second slot.
_HELD_SLOTS: ContextVar[frozenset[int]] = ContextVar(
    "vaultstore_async_held_slots", default=frozenset()
)


def _dialect_for(name: str) -> Dialect:
    if name == "sqlite":
        return Dialect()
    if name in {"postgresql", "postgres"}:
        return PostgresDialect()
    if name == "mysql":
        return MySQLDialect()
    raise ValidationError(
        f"database dialect must be sqlite, postgresql or mysql, got {name!r}"
    )


def _caller_database(database: databases.Database) -> databases.Database:
    # Re-check the caller's URL with the rules a URL string gets.
    driver.normalise_url(str(database.url))
    return database


class Backend:
    """Runs our SQL on one `databases.Database` and counts what it did."""

    def __init__(
        self,
        database: str | databases.Database,
        stats: Stats,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(database, databases.Database):
            self._db = _caller_database(database)
            self.owned = False
        elif isinstance(database, str):
            url = driver.normalise_url(database)
            options = driver.database_options(url, options or {})
            self._db = databases.Database(url, **options)
            self.owned = True
        else:
            raise ValidationError(
                "database must be a URL string or a databases.Database,"
                f" got {type(database).__name__}"
            )
        self._stats = stats
        self.dialect = _dialect_for(self._db.url.dialect)
        self.closed = False
        self._slots: asyncio.Semaphore | None = None
        if self.dialect.name == "sqlite":
            # `databases` opens an SQLite connection and a thread for every
            # task that runs a statement. The cap keeps many concurrent calls
            # from running out of file descriptors.
            self._slots = asyncio.Semaphore(SQLITE_MAX_CONNECTIONS)

    @property
    def url_for_logs(self) -> str:
        # The query string can carry options such as a password, so it is
        # left out along with the password in the user part.
        return str(self._db.url.obscure_password).partition("?")[0]

    async def connect(self) -> None:
        """Connect the pool (unless the caller's is already connected)."""
        self.closed = False
        opened = False
        if self.dialect.name == "sqlite":
            folder = driver.missing_sqlite_folder(self._db.url)
            if folder is not None:
                missing = FileNotFoundError(
                    errno.ENOENT, "No such file or directory", str(folder)
                )
                raise BackendError(
                    f"database connect failed: the SQLite file's folder {folder}"
                    " does not exist"
                ) from missing
        try:
            if self.owned or not self._db.is_connected:
                await self._db.connect()
                opened = True
            if isinstance(self.dialect, MySQLDialect):
                version = await self._db.fetch_val("SELECT VERSION()")
                self.dialect = MySQLDialect(mariadb="mariadb" in str(version).lower())
        except BaseException as exc:
            if opened and self.owned:
                await self._disconnect_quietly()
            if isinstance(exc, Exception):
                raise translate(exc, "connect") from exc
            raise

    async def _disconnect_quietly(self) -> None:
        try:
            await self._db.disconnect()
        except Exception as exc:
            logger.warning("disconnect failed: %s", type(exc).__name__)

    async def close(self) -> None:
        """Disconnect the pool if this store created it. Statements started
        after this raise StoreClosedError."""
        self.closed = True
        if not self.owned:
            return
        try:
            await self._db.disconnect()
        except Exception as exc:
            raise translate(exc, "disconnect") from exc

    async def fetch_all(
        self, sql: str, values: dict[str, Any] | None = None
    ) -> list[Mapping[str, Any]]:
        self._stats.statements += 1
        async with self._slot():
            try:
                rows = await self._db.fetch_all(sql, values)
            except Exception as exc:
                raise self._translate(exc, "query") from exc
        self._stats.rows_read += len(rows)
        return [row._mapping for row in rows]

    async def fetch_one(
        self, sql: str, values: dict[str, Any] | None = None
    ) -> Mapping[str, Any] | None:
        self._stats.statements += 1
        async with self._slot():
            try:
                row = await self._db.fetch_one(sql, values)
            except Exception as exc:
                raise self._translate(exc, "query") from exc
        if row is None:
            return None
        self._stats.rows_read += 1
        return row._mapping

    async def execute(self, sql: str, values: dict[str, Any] | None = None) -> int:
        """Run one statement and return the exact number of rows it changed
        (rows matched, on MySQL). `databases` reports no reliable count, so
        this runs on the driver connection that `databases` holds for the task."""
        self._stats.statements += 1
        sql, args = self.dialect.compile(sql, values or {})
        async with self.pinned() as raw:
            count = await self._guard(
                driver.raw_execute(self.dialect.name, raw, sql, args), "statement"
            )
        self._stats.rows_written += count
        return int(count)

    async def execute_ddl(self, sql: str) -> None:
        self._stats.statements += 1
        async with self.pinned() as raw:
            await self._guard(
                driver.raw_execute(self.dialect.name, raw, sql, [], quiet=True),
                "schema change",
            )

    async def table_exists(self, name: str) -> bool:
        row = await self.fetch_one(self.dialect.table_exists_sql(), {"name": name})
        return row is not None

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[Any]:
        """Hold this task's connection for the block; yield the driver's
        connection. The release runs to the end even if the task is
        cancelled, so no connection leaks from the pool."""
        async with self._slot():
            conn = self._db.connection()
            await self._guard(conn.__aenter__(), "connect")
            try:
                yield conn.raw_connection
            except BaseException:
                await self._release(conn, quiet=True)
                raise
            await self._release(conn, quiet=False)

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self.closed:
            raise StoreClosedError("store is closed; create a new one")
        held = _HELD_SLOTS.get()
        if self._slots is None or id(self) in held:
            yield
            return
        async with self._slots:
            if self.closed:
                raise StoreClosedError("store is closed; create a new one")
            marker = _HELD_SLOTS.set(held | {id(self)})
            try:
                yield
            finally:
                _HELD_SLOTS.reset(marker)

    def _translate(self, exc: Exception, action: str) -> VaultStoreError:
        if self.closed:
            return StoreClosedError("store was closed while the operation ran")
        return translate(exc, action)

    async def _release(self, conn: Any, quiet: bool) -> None:
        try:
            await asyncio.shield(conn.__aexit__(None, None, None))
        except Exception as exc:
            if not quiet:
                raise translate(exc, "connection release") from exc
            logger.warning("connection release failed: %s", type(exc).__name__)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Run the block in one write transaction on one connection.

        Statements this task runs inside the block use that connection. Any
        exception, cancellation included, rolls back. If COMMIT or ROLLBACK
        itself fails or is cancelled, the connection is closed rather than
        returned to the pool in an unknown state. Inside a transaction the
        caller already holds, the block joins it.
        """
        name = self.dialect.name
        async with self.pinned() as raw:
            if await driver.in_transaction(name, raw):
                yield
                return
            await self._guard(driver.begin(name, raw), "begin")
            try:
                yield
            except BaseException:
                await self._end(raw, commit=False)
                raise
            await self._end(raw, commit=True)

    async def _end(self, raw: Any, commit: bool) -> None:
        name = self.dialect.name
        try:
            await driver.finish(name, raw, commit)
        except BaseException as exc:
            driver.discard(name, raw)
            if not isinstance(exc, Exception):
                raise
            if commit:
                raise translate(exc, "commit") from exc
            # The error that caused the rollback is the one to report.
            logger.warning("rollback failed: %s", type(exc).__name__)

    async def _guard(self, awaitable: Any, action: str) -> Any:
        try:
            return await awaitable
        except Exception as exc:
            raise self._translate(exc, action) from exc

"""The one seam between the store and the database.

It owns the `databases.Database`, the dialect, connections, transactions,
exact row counts and the mapping of every driver error to our exceptions.
Nothing above this module imports a driver.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import databases

from . import _drivers as driver
from ._dialect import Dialect, MySQLDialect, PostgresDialect
from ._drivers import UniqueViolation, translate
from ._errors import ValidationError
from ._stats import Stats

logger = logging.getLogger("vaultstore_async")

__all__ = ["Backend", "UniqueViolation", "translate"]


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

    @property
    def url_for_logs(self) -> str:
        return str(self._db.url.obscure_password)

    async def connect(self) -> None:
        """Connect the pool (unless the caller's is already connected)."""
        opened = False
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
        """Disconnect the pool if this store created it."""
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
        try:
            rows = await self._db.fetch_all(sql, values)
        except Exception as exc:
            raise translate(exc, "query") from exc
        self._stats.rows_read += len(rows)
        return [row._mapping for row in rows]

    async def fetch_one(
        self, sql: str, values: dict[str, Any] | None = None
    ) -> Mapping[str, Any] | None:
        self._stats.statements += 1
        try:
            row = await self._db.fetch_one(sql, values)
        except Exception as exc:
            raise translate(exc, "query") from exc
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
                driver.raw_execute(self.dialect.name, raw, sql, []), "schema change"
            )

    async def table_exists(self, name: str) -> bool:
        row = await self.fetch_one(self.dialect.table_exists_sql(), {"name": name})
        return row is not None

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[Any]:
        """Hold this task's connection for the block; yield the driver's
        connection. The release runs to the end even if the task is
        cancelled, so no connection leaks from the pool."""
        conn = self._db.connection()
        await self._guard(conn.__aenter__(), "connect")
        try:
            yield conn.raw_connection
        except BaseException:
            await self._release(conn, quiet=True)
            raise
        await self._release(conn, quiet=False)

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
            raise translate(exc, action) from exc

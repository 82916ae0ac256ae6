"""The one seam between the store and the database.

It owns the `databases.Database`, the dialect, connections, transactions,
exact row counts and the mapping of every driver error to our exceptions.
Nothing above this module imports a driver.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import databases

from ._dialect import Dialect, MySQLDialect, PostgresDialect
from ._errors import BackendError, ValidationError, VaultStoreError
from ._stats import Stats

logger = logging.getLogger("vaultstore_async")

_SQLITE_BUSY_TIMEOUT = 30.0
_MYSQL_KEY = re.compile(r"for key '([^']*)'")

try:  # Optional drivers: only the one in use needs to be installed.
    import asyncpg  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the install
    asyncpg = None

try:
    import pymysql  # type: ignore[import-untyped]
    from pymysql.constants import CLIENT as _MYSQL_CLIENT  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the install
    pymysql = None
    _MYSQL_CLIENT = None


class UniqueViolation(BackendError):
    """An INSERT or UPDATE hit a unique index; `detail` names the index or
    column (never the value)."""

    def __init__(self, detail: str) -> None:
        super().__init__("database rejected a duplicate key")
        self.detail = detail


def _error_code(exc: BaseException) -> str:
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        return f" (SQLSTATE {sqlstate})"
    name = getattr(exc, "sqlite_errorname", None)
    if name:
        return f" ({name})"
    is_mysql = pymysql is not None and isinstance(exc, pymysql.err.MySQLError)
    if is_mysql and exc.args and isinstance(exc.args[0], int):
        return f" (error {exc.args[0]})"
    return ""


def _unique_detail(exc: BaseException) -> str | None:
    if isinstance(exc, sqlite3.IntegrityError):
        name = getattr(exc, "sqlite_errorname", "")
        if name in {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}:
            return str(exc).rpartition(":")[2].strip()
        return None
    if asyncpg is not None and isinstance(exc, asyncpg.UniqueViolationError):
        return str(getattr(exc, "constraint_name", "") or "")
    is_mysql = pymysql is not None and isinstance(exc, pymysql.err.IntegrityError)
    if is_mysql and exc.args and exc.args[0] in (1062, 1586):
        message = str(exc.args[1]) if len(exc.args) > 1 else ""
        match = _MYSQL_KEY.search(message)
        return match.group(1) if match else ""
    return None


def translate(exc: Exception, action: str) -> VaultStoreError:
    """Map a driver error to ours. Driver messages can echo bound values,
    so only the error class and its code are kept; the original is chained."""
    if isinstance(exc, VaultStoreError):
        return exc
    detail = _unique_detail(exc)
    if detail is not None:
        return UniqueViolation(detail)
    return BackendError(
        f"database {action} failed: {type(exc).__name__}{_error_code(exc)}"
    )


def normalise_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValidationError(
            "url must look like sqlite:///path/to/file.db,"
            " postgresql://host/db or mysql://host/db"
        )
    driver = scheme.split("+", 1)
    base = {"postgres": "postgresql", "mariadb": "mysql"}.get(driver[0], driver[0])
    if base not in {"sqlite", "postgresql", "mysql"}:
        raise ValidationError(
            f"url scheme must be sqlite, postgresql or mysql, got {driver[0]!r}"
        )
    scheme = base if len(driver) == 1 else f"{base}+{driver[1]}"
    if base == "sqlite":
        path = rest.split("?", 1)[0]
        if path in {"", "/", "/:memory:"} or "mode=memory" in rest:
            raise ValidationError(
                "url must name an SQLite file: in-memory SQLite databases are"
                " not shared between connections"
            )
    return f"{scheme}://{rest}"


def _database_options(url: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    dialect = url.partition("://")[0].split("+")[0]
    options: dict[str, Any] = {}
    query = url.partition("?")[2]
    if dialect == "sqlite":
        options["timeout"] = _SQLITE_BUSY_TIMEOUT
    elif dialect == "postgresql":
        if "min_size" not in query:
            options["min_size"] = 1
    elif dialect == "mysql":
        if "min_size" not in query:
            options["min_size"] = 1
        if _MYSQL_CLIENT is not None:
            # Row counts then report rows matched, not only rows changed.
            options["client_flag"] = _MYSQL_CLIENT.FOUND_ROWS
    options.update(extra)
    return options


class Backend:
    """Runs our SQL on one `databases.Database` and counts what it did."""

    def __init__(
        self,
        database: str | databases.Database,
        stats: Stats,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(database, databases.Database):
            self._db = database
            self.owned = False
        elif isinstance(database, str):
            url = normalise_url(database)
            self._db = databases.Database(url, **_database_options(url, options or {}))
            self.owned = True
        else:
            raise ValidationError(
                "database must be a URL string or a databases.Database,"
                f" got {type(database).__name__}"
            )
        self._stats = stats
        self.dialect = self._dialect_for(self._db.url.dialect)

    @staticmethod
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

    @property
    def url_for_logs(self) -> str:
        return str(self._db.url.obscure_password)

    async def connect(self) -> None:
        try:
            if self.owned or not self._db.is_connected:
                await self._db.connect()
            if isinstance(self.dialect, MySQLDialect):
                version = await self._db.fetch_val("SELECT VERSION()")
                self.dialect = MySQLDialect(mariadb="mariadb" in str(version).lower())
        except Exception as exc:
            raise translate(exc, "connect") from exc

    async def close(self) -> None:
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
        try:
            async with self._db.connection() as conn:
                count = await self._raw_execute(conn.raw_connection, sql, args)
        except Exception as exc:
            raise translate(exc, "statement") from exc
        self._stats.rows_written += count
        return count

    async def _raw_execute(self, raw: Any, sql: str, args: list[Any]) -> int:
        name = self.dialect.name
        if name == "postgresql":
            status: str = await raw.execute(sql, *args)
            last = status.rpartition(" ")[2]
            return int(last) if last.isdigit() else 0
        if name == "mysql":
            async with raw.cursor() as cursor:
                await cursor.execute(sql, args)
                return max(int(cursor.rowcount), 0)
        cursor = await raw.execute(sql, args)
        try:
            return max(int(cursor.rowcount), 0)
        finally:
            await cursor.close()

    async def execute_ddl(self, sql: str) -> None:
        self._stats.statements += 1
        try:
            async with self._db.connection() as conn:
                with warnings.catch_warnings():
                    # MariaDB answers CREATE ... IF NOT EXISTS on an existing
                    # table with a note, which PyMySQL turns into a Warning.
                    if pymysql is not None:
                        warnings.simplefilter("ignore", pymysql.Warning)
                    await self._raw_execute(conn.raw_connection, sql, [])
        except Exception as exc:
            raise translate(exc, "schema change") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Hold one connection and one write transaction for the block.

        Statements run by this task inside the block use that connection.
        On SQLite the transaction starts with BEGIN IMMEDIATE, so a writer
        waits for the lock at the start instead of failing part way. Any
        exception, cancellation included, rolls back.
        """
        try:
            conn = self._db.connection()
            await conn.__aenter__()
        except Exception as exc:
            raise translate(exc, "connect") from exc
        try:
            async with self._begin(conn):
                yield
        finally:
            await conn.__aexit__(None, None, None)

    @asynccontextmanager
    async def _begin(self, conn: Any) -> AsyncIterator[None]:
        raw = conn.raw_connection
        if self.dialect.name == "sqlite" and not raw.in_transaction:
            await self._guard(raw.execute("BEGIN IMMEDIATE"), "begin")
            try:
                yield
            except BaseException:
                await self._rollback_quietly(raw.execute("ROLLBACK"))
                raise
            await self._guard(raw.execute("COMMIT"), "commit")
            return
        transaction = conn.transaction()
        await self._guard(transaction.start(), "begin")
        try:
            yield
        except BaseException:
            await self._rollback_quietly(transaction.rollback())
            raise
        await self._guard(transaction.commit(), "commit")

    async def _rollback_quietly(self, awaitable: Any) -> None:
        # The error that caused the rollback is the one the caller needs;
        # a failed rollback (say, on a dead connection) is only logged.
        try:
            await awaitable
        except Exception as exc:
            logger.warning("rollback failed: %s", type(exc).__name__)

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[None]:
        """Keep one connection for this task for the whole block."""
        try:
            conn = self._db.connection()
            await conn.__aenter__()
        except Exception as exc:
            raise translate(exc, "connect") from exc
        try:
            yield
        finally:
            await conn.__aexit__(None, None, None)

    async def _guard(self, awaitable: Any, action: str) -> Any:
        try:
            return await awaitable
        except Exception as exc:
            raise translate(exc, action) from exc

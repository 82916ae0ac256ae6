"""Differences between the three drivers under `databases`: URLs and pool
options, exact row counts, transaction control and error mapping.

`_backend.Backend` is the only user of this module.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import databases

from ._errors import BackendError, ValidationError, VaultStoreError

logger = logging.getLogger("vaultstore_async")

_SQLITE_BUSY_TIMEOUT = 30.0
_MYSQL_KEY = re.compile(r"for key '([^']*)'")

try:  # Optional drivers: only the one in use needs to be installed.
    import asyncpg  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the install
    asyncpg = None

try:
    import aiomysql  # type: ignore[import-untyped]
    import pymysql  # type: ignore[import-untyped]
    from pymysql.constants import CLIENT as _MYSQL_CLIENT  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the install
    aiomysql = None
    pymysql = None
    _MYSQL_CLIENT = None

# scheme -> (driver module, extra that installs it)
_DRIVERS = {
    "sqlite": ("aiosqlite", "sqlite"),
    "postgresql": ("asyncpg", "postgres"),
    "mysql": ("aiomysql", "mysql"),
}
_DRIVER_SUFFIX = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql"}


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


def translate(exc: BaseException, action: str) -> VaultStoreError:
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


def _check_driver(base: str) -> None:
    module, extra = _DRIVERS[base]
    if importlib.util.find_spec(module) is None:
        raise ValidationError(
            f"url needs the {module} driver, which is not installed;"
            f" install vaultstore_async[{extra}]"
        )


def normalise_url(url: str) -> str:
    """Return the URL with a canonical scheme, or raise ValidationError for
    schemes, drivers and SQLite targets the store cannot use."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValidationError(
            "url must look like sqlite:///path/to/file.db,"
            " postgresql://host/db or mysql://host/db"
        )
    base, _, suffix = scheme.partition("+")
    base = {"postgres": "postgresql", "mariadb": "mysql"}.get(base, base)
    if base not in _DRIVERS:
        raise ValidationError(
            f"url scheme must be sqlite, postgresql or mysql, got {base!r}"
        )
    if suffix and suffix != _DRIVER_SUFFIX[base]:
        raise ValidationError(
            f"url driver for {base} must be {_DRIVER_SUFFIX[base]}, got {suffix!r}"
        )
    _check_driver(base)
    normalised = f"{base}://{rest}"
    if base == "sqlite":
        check_sqlite_target(databases.DatabaseURL(normalised))
    return normalised


def check_sqlite_target(url: databases.DatabaseURL) -> None:
    """Reject in-memory and unnamed SQLite databases: `databases` opens a new
    connection for each task, and each would see an empty database."""
    name = url.database or ""
    in_memory = name in {"", ":memory:"} or "memory" in str(url.options.get("mode"))
    if in_memory or name.startswith("file::memory:"):
        raise ValidationError(
            "url must name an SQLite file (sqlite:///path/to/vault.db):"
            " in-memory SQLite databases are not shared between connections"
        )


def missing_sqlite_folder(url: databases.DatabaseURL) -> Path | None:
    """Return the folder of an SQLite file if it does not exist."""
    name = url.database or ""
    folder = Path(name).parent
    if name.startswith("file:") or folder.is_dir():
        return None
    return folder


def database_options(url: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Pool options for a Database the store creates; `extra` wins."""
    dialect = url.partition("://")[0]
    options: dict[str, Any] = {}
    query = url.partition("?")[2]
    if dialect == "sqlite":
        options["timeout"] = _SQLITE_BUSY_TIMEOUT
    elif "min_size" not in query:
        options["min_size"] = 1
    if dialect == "mysql" and _MYSQL_CLIENT is not None:
        # Row counts then report rows matched, not only rows changed.
        options["client_flag"] = _MYSQL_CLIENT.FOUND_ROWS
    options.update(extra)
    return options


class _QuietCursor(aiomysql.Cursor if aiomysql is not None else object):  # type: ignore[misc]
    """A cursor that does not turn MariaDB's notes (such as "table already
    exists" for CREATE ... IF NOT EXISTS) into Python warnings."""

    async def _show_warnings(self, conn: Any) -> None:
        return None


async def raw_execute(
    dialect: str, raw: Any, sql: str, args: list[Any], quiet: bool = False
) -> int:
    """Run one statement on a driver connection; return the rows it changed.
    `quiet` drops MariaDB's notes, for DDL that may find its object exists."""
    if dialect == "postgresql":
        status: str = await raw.execute(sql, *args)
        last = status.rpartition(" ")[2]
        return int(last) if last.isdigit() else 0
    if dialect == "mysql":
        cursor_class = _QuietCursor if quiet else aiomysql.Cursor
        async with raw.cursor(cursor_class) as cursor:
            await cursor.execute(sql, args)
            return max(int(cursor.rowcount), 0)
    cursor = await raw.execute(sql, args)
    try:
        return max(int(cursor.rowcount), 0)
    finally:
        await cursor.close()


async def in_transaction(dialect: str, raw: Any) -> bool:
    if dialect == "postgresql":
        return bool(raw.is_in_transaction())
    if dialect == "mysql":
        return bool(raw.get_transaction_status())
    return bool(raw.in_transaction)


async def begin(dialect: str, raw: Any) -> None:
    # SQLite's BEGIN IMMEDIATE takes the write lock at once, so a writer
    # waits (busy timeout) at the start instead of failing part way.
    sql = "BEGIN IMMEDIATE" if dialect == "sqlite" else "BEGIN"
    await raw_execute(dialect, raw, sql, [])


async def finish(dialect: str, raw: Any, commit: bool) -> None:
    await raw_execute(dialect, raw, "COMMIT" if commit else "ROLLBACK", [])


def discard(dialect: str, raw: Any) -> None:
    """Close a driver connection whose transaction state is unknown, so the
    pool does not hand it out again."""
    try:
        if dialect == "postgresql":
            raw.terminate()
        elif dialect == "mysql":
            raw.close()
    except Exception as exc:  # the connection is being thrown away anyway
        logger.warning("closing a broken connection failed: %s", type(exc).__name__)

"""Versioned schema migrations, applied once even when many processes start.

Each process takes the database's own lock before it looks at the applied
versions: a transaction-scoped advisory lock on PostgreSQL, GET_LOCK on
MariaDB/MySQL and BEGIN IMMEDIATE on SQLite. Every DDL statement is
idempotent and a duplicate version row counts as "already applied", so a
lock that is only per node (as on a Galera cluster) still ends correct.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from ._backend import Backend, UniqueViolation
from ._dialect import Dialect, derived_name
from ._errors import MigrationError

logger = logging.getLogger("vaultstore_async")

_LOCK_TIMEOUT_SECONDS = 60

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Names:
    vault: str
    meta: str

    @property
    def go_ledger(self) -> str:
        # Rows that import_go copied from a Go table; see _go_ops.
        return derived_name(self.vault, "go_ledger")

    @property
    def migrations(self) -> str:
        # Named from the vault table, so two vaults that share a meta table
        # each record their own schema version.
        return derived_name(self.vault, "migrations")


_Step = Callable[[Dialect, Names], list[str]]


def _v1(dialect: Dialect, names: Names) -> list[str]:
    return dialect.schema_v1(
        dialect.quote(names.vault), dialect.quote(names.meta), names.vault
    )


MIGRATIONS: list[tuple[int, _Step]] = [(1, _v1)]
LATEST_VERSION = MIGRATIONS[-1][0]


# One lock per database: migrations of different vaults in one database
# wait for each other, so their DDL on a shared meta table never races.
_LOCK_NAME = "vaultstore_async:migrate"
_LOCK_KEY = int.from_bytes(
    hashlib.blake2b(_LOCK_NAME.encode(), digest_size=8).digest(), "big", signed=True
)


def check_not_newer(version: int | None) -> None:
    """Raise MigrationError if the database is ahead of this release."""
    if version is not None and version > LATEST_VERSION:
        raise MigrationError(
            f"database schema is at version {version}, newer than version"
            f" {LATEST_VERSION} that this vaultstore_async release supports;"
            " upgrade the library"
        )


async def current_version(backend: Backend, names: Names) -> int | None:
    """Highest applied version, or None when no migration table exists."""
    if not await backend.table_exists(names.migrations):
        return None
    table = backend.dialect.quote(names.migrations)
    row = await backend.fetch_one(f"SELECT MAX(version) AS v FROM {table}")
    if row is None or row["v"] is None:
        return 0
    return int(row["v"])


async def migrate(backend: Backend, names: Names) -> int:
    """Apply every pending version and return the schema version."""
    return await _locked(backend, lambda: _apply(backend, names))


async def create_go_ledger(backend: Backend, names: Names) -> None:
    """Create the Go import ledger if it is missing, under the migration
    lock, because concurrent CREATE TABLE IF NOT EXISTS can fail on
    PostgreSQL. It is made by the first import rather than by a schema
    version, so stores that never import from Go do not have it.

    NOTE: when a caller's `databases.Database` already has a transaction
    open in this task, the creation joins it, and on MariaDB the CREATE
    TABLE commits that transaction."""

    async def create() -> None:
        table = backend.dialect.quote(names.go_ledger)
        await backend.execute_ddl(backend.dialect.go_ledger(table))

    await _locked(backend, create)


async def _locked(backend: Backend, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` holding the database-wide migration lock."""
    dialect = backend.dialect
    if dialect.name == "postgresql":
        async with backend.transaction():
            await backend.execute(
                "SELECT pg_advisory_xact_lock(:key)", {"key": _LOCK_KEY}
            )
            return await work()
    if dialect.name == "mysql":
        async with backend.pinned():
            await _get_lock(backend)
            try:
                return await work()
            finally:
                await _release_lock(backend)
    async with backend.transaction():
        return await work()


async def _get_lock(backend: Backend) -> None:
    row = await backend.fetch_one(
        "SELECT GET_LOCK(:name, :timeout) AS got",
        {"name": _LOCK_NAME, "timeout": _LOCK_TIMEOUT_SECONDS},
    )
    got = None if row is None else row["got"]
    if got == 1:
        return
    if got == 0:
        raise MigrationError(
            f"timed out after {_LOCK_TIMEOUT_SECONDS} s waiting for another"
            " process to finish migrating; try again"
        )
    raise MigrationError("could not take the migration lock (GET_LOCK failed)")


async def _release_lock(backend: Backend) -> None:
    # A failed release must not hide the error or cancellation that ended
    # the migration; the server frees the lock when the connection closes.
    try:
        await backend.fetch_one(
            "SELECT RELEASE_LOCK(:name) AS released", {"name": _LOCK_NAME}
        )
    except Exception as exc:
        logger.warning("releasing the migration lock failed: %s", exc)


async def _apply(backend: Backend, names: Names) -> int:
    dialect = backend.dialect
    table = dialect.quote(names.migrations)
    await backend.execute_ddl(dialect.migrations_table(table))
    rows = await backend.fetch_all(f"SELECT version FROM {table}")
    applied = {int(row["version"]) for row in rows}
    newest = max(applied, default=0)
    check_not_newer(newest)
    for version, step in MIGRATIONS:
        if version in applied:
            continue
        for statement in step(dialect, names):
            await backend.execute_ddl(statement)
        now = dialect.to_db_time(datetime.now(UTC))
        try:
            await backend.execute(
                f"INSERT INTO {table} (version, applied_at) VALUES (:version, :now)",
                {"version": version, "now": now},
            )
        except UniqueViolation:
            logger.info("schema version %d was applied by another process", version)
            continue
        logger.info("applied schema version %d to %s", version, names.vault)
    return max(newest, LATEST_VERSION)

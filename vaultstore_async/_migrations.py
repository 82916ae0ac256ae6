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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ._backend import Backend, UniqueViolation
from ._dialect import Dialect, derived_name
from ._errors import BackendError, MigrationError

logger = logging.getLogger("vaultstore_async")

_LOCK_TIMEOUT_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Names:
    vault: str
    meta: str

    @property
    def migrations(self) -> str:
        return derived_name(self.meta, "migrations")


_Step = Callable[[Dialect, Names], list[str]]


def _v1(dialect: Dialect, names: Names) -> list[str]:
    return dialect.schema_v1(
        dialect.quote(names.vault), dialect.quote(names.meta), names.vault
    )


MIGRATIONS: list[tuple[int, _Step]] = [(1, _v1)]
LATEST_VERSION = MIGRATIONS[-1][0]


def _lock_name(names: Names) -> str:
    digest = hashlib.blake2b(
        f"{names.vault}\x00{names.meta}".encode(), digest_size=8
    ).hexdigest()
    return f"vaultstore_async:{digest}"


def _lock_key(names: Names) -> int:
    digest = hashlib.blake2b(_lock_name(names).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def current_version(backend: Backend, names: Names) -> int | None:
    """Highest applied version, or None when no migration table exists."""
    table = backend.dialect.quote(names.migrations)
    try:
        row = await backend.fetch_one(f"SELECT MAX(version) AS v FROM {table}")
    except BackendError:
        return None
    if row is None or row["v"] is None:
        return 0
    return int(row["v"])


async def migrate(backend: Backend, names: Names) -> int:
    """Apply every pending version and return the schema version."""
    dialect = backend.dialect
    if dialect.name == "postgresql":
        async with backend.transaction():
            await backend.execute(
                "SELECT pg_advisory_xact_lock(:key)", {"key": _lock_key(names)}
            )
            return await _apply(backend, names)
    if dialect.name == "mysql":
        async with backend.pinned():
            got = await backend.fetch_one(
                "SELECT GET_LOCK(:name, :timeout) AS got",
                {"name": _lock_name(names), "timeout": _LOCK_TIMEOUT_SECONDS},
            )
            if got is None or got["got"] != 1:
                raise MigrationError(
                    "timed out waiting for another process to finish migrating"
                )
            try:
                return await _apply(backend, names)
            finally:
                await backend.fetch_one(
                    "SELECT RELEASE_LOCK(:name) AS released",
                    {"name": _lock_name(names)},
                )
    async with backend.transaction():
        return await _apply(backend, names)


async def _apply(backend: Backend, names: Names) -> int:
    dialect = backend.dialect
    table = dialect.quote(names.migrations)
    await backend.execute_ddl(dialect.migrations_table(table))
    rows = await backend.fetch_all(f"SELECT version FROM {table}")
    applied = {int(row["version"]) for row in rows}
    newest = max(applied, default=0)
    if newest > LATEST_VERSION:
        raise MigrationError(
            f"database schema is at version {newest}, newer than version"
            f" {LATEST_VERSION} that this vaultstore_async release knows;"
            " upgrade the library"
        )
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

"""SQL differences between SQLite, PostgreSQL and MariaDB/MySQL.

Every statement is written with `:name` placeholders; the dialect quotes
identifiers, converts timestamps in both directions, and supplies the DDL
and the few statements whose syntax differs.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PLACEHOLDER = re.compile(r"(?<![:\w\\]):(\w+)")

# PostgreSQL cuts identifiers at 63 bytes and MariaDB rejects names over 64,
# so long derived names are shortened with a hash to stay distinct.
_MAX_DERIVED = 60


def derived_name(base: str, suffix: str) -> str:
    name = f"{base}_{suffix}"
    if len(name) <= _MAX_DERIVED:
        return name
    digest = hashlib.blake2b(base.encode(), digest_size=8).hexdigest()
    return f"vs_{digest}_{suffix}"[:_MAX_DERIVED]


def in_list(prefix: str, values: list[str]) -> tuple[str, dict[str, str]]:
    """Return the placeholders of an `IN (...)` list and their values."""
    names = {f"{prefix}{index}": value for index, value in enumerate(values)}
    return ", ".join(f":{name}" for name in names), names


def is_identifier(name: object) -> bool:
    return isinstance(name, str) and _IDENTIFIER.fullmatch(name) is not None


class Dialect:
    """Base: SQLite-flavoured defaults, overridden per backend."""

    name = "sqlite"

    def quote(self, identifier: str) -> str:
        return f'"{identifier}"'

    def to_db_time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        utc = value.astimezone(UTC).replace(tzinfo=None)
        return utc.isoformat(sep=" ", timespec="microseconds")

    def from_db_time(self, value: Any) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(parsed, datetime):
            raise TypeError(f"expected a timestamp, got {type(parsed).__name__}")
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)

    def compile(self, sql: str, values: dict[str, Any]) -> tuple[str, list[Any]]:
        """Rewrite `:name` placeholders into the driver's own style."""
        args: list[Any] = []

        def replace(match: re.Match[str]) -> str:
            args.append(values[match.group(1)])
            return "?"

        return _PLACEHOLDER.sub(replace, sql), args

    def table_exists_sql(self) -> str:
        return (
            "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = :name"
        )

    def upsert_setting(self, table: str) -> str:
        return (
            f"INSERT INTO {table} (meta_key, meta_value, created_at, updated_at)"
            " VALUES (:key, :value, :now, :now)"
            " ON CONFLICT (meta_key) DO UPDATE SET"
            " meta_value = excluded.meta_value, updated_at = excluded.updated_at"
        )

    def upsert_ledger(self, table: str, count: int) -> str:
        """Insert or replace `count` ledger rows, with placeholders
        token<n>, row_id<n>, digest<n> and one shared :now."""
        rows = ", ".join(
            f"(:token{n}, :row_id{n}, :digest{n}, :now)" for n in range(count)
        )
        return (
            f"INSERT INTO {table} (vault_token, row_id, go_digest, imported_at)"
            f" VALUES {rows} {self._ledger_conflict}"
        )

    _ledger_conflict = (
        "ON CONFLICT (vault_token) DO UPDATE SET row_id = excluded.row_id,"
        " go_digest = excluded.go_digest, imported_at = excluded.imported_at"
    )

    def schema_v1(self, vault: str, meta: str, vault_name: str) -> list[str]:
        ix_expires = self.quote(derived_name(vault_name, "expires_at"))
        ix_deleted = self.quote(derived_name(vault_name, "soft_deleted_at"))
        ix_created = self.quote(derived_name(vault_name, "created_at"))
        return [
            f"CREATE TABLE IF NOT EXISTS {vault} ("
            " id TEXT NOT NULL PRIMARY KEY,"
            " vault_token TEXT NOT NULL UNIQUE,"
            " vault_value TEXT NOT NULL,"
            " created_at TEXT NOT NULL,"
            " updated_at TEXT NOT NULL,"
            " expires_at TEXT NULL,"
            " soft_deleted_at TEXT NULL)",
            f"CREATE INDEX IF NOT EXISTS {ix_expires} ON {vault} (expires_at)",
            f"CREATE INDEX IF NOT EXISTS {ix_deleted} ON {vault} (soft_deleted_at)",
            f"CREATE INDEX IF NOT EXISTS {ix_created} ON {vault} (created_at, id)",
            f"CREATE TABLE IF NOT EXISTS {meta} ("
            " meta_key TEXT NOT NULL PRIMARY KEY,"
            " meta_value TEXT NOT NULL,"
            " created_at TEXT NOT NULL,"
            " updated_at TEXT NOT NULL)",
        ]

    def migrations_table(self, table: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " version INTEGER NOT NULL PRIMARY KEY,"
            " applied_at TEXT NOT NULL)"
        )

    def go_ledger(self, table: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " vault_token TEXT NOT NULL PRIMARY KEY,"
            " row_id TEXT NOT NULL,"
            " go_digest TEXT NOT NULL,"
            " imported_at TEXT NOT NULL)"
        )


class PostgresDialect(Dialect):
    name = "postgresql"

    def table_exists_sql(self) -> str:
        # PostgreSQL stores names cut to 63 bytes; the names are ASCII.
        return (
            "SELECT 1 AS found FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_name = LEFT(:name, 63)"
        )

    def to_db_time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        return value.astimezone(UTC)

    def compile(self, sql: str, values: dict[str, Any]) -> tuple[str, list[Any]]:
        order: dict[str, int] = {}
        args: list[Any] = []

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in order:
                args.append(values[name])
                order[name] = len(args)
            return f"${order[name]}"

        return _PLACEHOLDER.sub(replace, sql), args

    def schema_v1(self, vault: str, meta: str, vault_name: str) -> list[str]:
        ix_expires = self.quote(derived_name(vault_name, "expires_at"))
        ix_deleted = self.quote(derived_name(vault_name, "soft_deleted_at"))
        ix_created = self.quote(derived_name(vault_name, "created_at"))
        ux_token = self.quote(derived_name(vault_name, "token_key"))
        # COLLATE "C" compares and sorts by code point, as SQLite and
        # MariaDB's binary collations do, whatever the database's locale.
        return [
            f"CREATE TABLE IF NOT EXISTS {vault} ("
            ' id VARCHAR(255) COLLATE "C" NOT NULL PRIMARY KEY,'
            ' vault_token VARCHAR(255) COLLATE "C" NOT NULL,'
            " vault_value TEXT NOT NULL,"
            " created_at TIMESTAMPTZ NOT NULL,"
            " updated_at TIMESTAMPTZ NOT NULL,"
            " expires_at TIMESTAMPTZ NULL,"
            " soft_deleted_at TIMESTAMPTZ NULL,"
            f" CONSTRAINT {ux_token} UNIQUE (vault_token))",
            f"CREATE INDEX IF NOT EXISTS {ix_expires} ON {vault} (expires_at)",
            f"CREATE INDEX IF NOT EXISTS {ix_deleted} ON {vault} (soft_deleted_at)",
            f"CREATE INDEX IF NOT EXISTS {ix_created} ON {vault} (created_at, id)",
            f"CREATE TABLE IF NOT EXISTS {meta} ("
            ' meta_key VARCHAR(255) COLLATE "C" NOT NULL PRIMARY KEY,'
            " meta_value TEXT NOT NULL,"
            " created_at TIMESTAMPTZ NOT NULL,"
            " updated_at TIMESTAMPTZ NOT NULL)",
        ]

    def migrations_table(self, table: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " version INTEGER NOT NULL PRIMARY KEY,"
            " applied_at TIMESTAMPTZ NOT NULL)"
        )

    def go_ledger(self, table: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            ' vault_token VARCHAR(255) COLLATE "C" NOT NULL PRIMARY KEY,'
            ' row_id VARCHAR(255) COLLATE "C" NOT NULL,'
            " go_digest CHAR(64) NOT NULL,"
            " imported_at TIMESTAMPTZ NOT NULL)"
        )


class MySQLDialect(Dialect):
    name = "mysql"

    def __init__(self, mariadb: bool = True) -> None:
        self.mariadb = mariadb

    def quote(self, identifier: str) -> str:
        return f"`{identifier}`"

    def table_exists_sql(self) -> str:
        return (
            "SELECT 1 AS found FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name = :name"
        )

    def to_db_time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def compile(self, sql: str, values: dict[str, Any]) -> tuple[str, list[Any]]:
        args: list[Any] = []

        def replace(match: re.Match[str]) -> str:
            args.append(values[match.group(1)])
            return "%s"

        return _PLACEHOLDER.sub(replace, sql.replace("%", "%%")), args

    @property
    def _exact(self) -> str:
        # utf8mb4_bin pads trailing spaces ('a' = 'a '); the NO PAD binary
        # collations compare every character.
        collation = "utf8mb4_nopad_bin" if self.mariadb else "utf8mb4_0900_bin"
        return f"CHARACTER SET utf8mb4 COLLATE {collation}"

    def upsert_setting(self, table: str) -> str:
        return (
            f"INSERT INTO {table} (meta_key, meta_value, created_at, updated_at)"
            " VALUES (:key, :value, :now, :now)"
            " ON DUPLICATE KEY UPDATE"
            " meta_value = VALUES(meta_value), updated_at = VALUES(updated_at)"
        )

    _ledger_conflict = (
        "ON DUPLICATE KEY UPDATE row_id = VALUES(row_id),"
        " go_digest = VALUES(go_digest), imported_at = VALUES(imported_at)"
    )

    def schema_v1(self, vault: str, meta: str, vault_name: str) -> list[str]:
        ix_expires = self.quote(derived_name(vault_name, "expires_at"))
        ix_deleted = self.quote(derived_name(vault_name, "soft_deleted_at"))
        ix_created = self.quote(derived_name(vault_name, "created_at"))
        ux_token = self.quote(derived_name(vault_name, "token_key"))
        return [
            f"CREATE TABLE IF NOT EXISTS {vault} ("
            f" id VARCHAR(255) {self._exact} NOT NULL PRIMARY KEY,"
            f" vault_token VARCHAR(255) {self._exact} NOT NULL,"
            " vault_value LONGTEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
            " created_at DATETIME(6) NOT NULL,"
            " updated_at DATETIME(6) NOT NULL,"
            " expires_at DATETIME(6) NULL,"
            " soft_deleted_at DATETIME(6) NULL,"
            f" UNIQUE KEY {ux_token} (vault_token),"
            f" KEY {ix_expires} (expires_at),"
            f" KEY {ix_deleted} (soft_deleted_at),"
            f" KEY {ix_created} (created_at, id)"
            ") ENGINE=InnoDB",
            f"CREATE TABLE IF NOT EXISTS {meta} ("
            f" meta_key VARCHAR(255) {self._exact} NOT NULL PRIMARY KEY,"
            " meta_value LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
            " created_at DATETIME(6) NOT NULL,"
            " updated_at DATETIME(6) NOT NULL"
            ") ENGINE=InnoDB",
        ]

    def migrations_table(self, table: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " version INT NOT NULL PRIMARY KEY,"
            " applied_at DATETIME(6) NOT NULL"
            ") ENGINE=InnoDB"
        )

    def go_ledger(self, table: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            f" vault_token VARCHAR(255) {self._exact} NOT NULL PRIMARY KEY,"
            f" row_id VARCHAR(255) {self._exact} NOT NULL,"
            " go_digest CHAR(64) CHARACTER SET ascii NOT NULL,"
            " imported_at DATETIME(6) NOT NULL"
            ") ENGINE=InnoDB"
        )

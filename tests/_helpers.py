"""Raw SQL access to a test's tables, bypassing the store.

Tests use these to inspect what the store wrote and to plant rows the
store would never write itself (tampered values, newer schema versions).
Table names come from the `table_names` fixture, so they are plain
identifiers that need no quoting on any backend.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

import databases

from vaultstore_async._dialect import derived_name


async def count_rows(url: str, table: str) -> int:
    async with databases.Database(url) as db:
        return int(await db.fetch_val(f"SELECT COUNT(*) FROM {table}"))


async def fetch_row(url: str, table: str, token: str) -> dict[str, Any]:
    """Return every column of the row holding `token`, soft-deleted or not."""
    async with databases.Database(url) as db:
        row = await db.fetch_one(
            f"SELECT * FROM {table} WHERE vault_token = :token", {"token": token}
        )
    assert row is not None, "no row holds the token"
    return dict(row._mapping)


async def stored_value(url: str, table: str, token: str) -> str:
    row = await fetch_row(url, table, token)
    return str(row["vault_value"])


async def write_value(url: str, table: str, token: str, value: str) -> None:
    """Overwrite the stored text of one row, as an attacker with SQL access could."""
    async with databases.Database(url) as db:
        await db.execute(
            f"UPDATE {table} SET vault_value = :value WHERE vault_token = :token",
            {"value": value, "token": token},
        )


def utc_time(value: Any) -> datetime | None:
    """Convert a timestamp column as a driver returns it to an aware UTC datetime.

    SQLite returns text and MariaDB a naive datetime, both in UTC wall time.
    PostgreSQL returns an aware datetime.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def quote(url: str, identifier: str) -> str:
    if url.startswith("mysql"):
        return f"`{identifier}`"
    return f'"{identifier}"'


async def drop_named_tables(url: str, vault: str, meta: str) -> None:
    """Drop a store's tables when the names need quoting or are long enough
    for the migrations table to get a shortened name."""
    async with databases.Database(url) as db:
        for table in (
            vault,
            meta,
            derived_name(vault, "migrations"),
            derived_name(vault, "go_ledger"),
        ):
            with warnings.catch_warnings():
                # MariaDB notes a missing table as a warning even with IF EXISTS.
                warnings.simplefilter("ignore")
                await db.execute(f"DROP TABLE IF EXISTS {quote(url, table)}")

"""Go VaultStore data for tests: the published vectors, a table shaped
like the Go library's, and an encoder of its legacy format for crafting
inputs.

The table follows the Go schema: `vault_token` unique, text timestamps
`YYYY-MM-DD HH:MM:SS` in UTC with `9999-12-31 23:59:59` meaning never,
and a meta table holding settings at object_type 'vault', object_id
'settings'. MariaDB gets DATETIME columns, as Go creates them there;
SQLite and PostgreSQL get text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import warnings
from pathlib import Path
from typing import Any

import databases

ROOT = Path(__file__).resolve().parent
VECTORS_FILE = ROOT / "data" / "go_vaultstore_vectors.json"
SENTINEL = "9999-12-31 23:59:59"
PAST = "2020-01-01 00:00:00"
CREATED = "2024-05-06 07:08:09"


def vectors() -> list[dict[str, Any]]:
    data = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return list(data["vectors"])


def go_table_names() -> tuple[str, str]:
    suffix = secrets.token_hex(4)
    return f"go_{suffix}", f"go_{suffix}_meta"


def _ddl(url: str, vault: str, meta: str) -> list[str]:
    if url.startswith("mysql"):
        stamp = "DATETIME NULL"
        return [
            f"CREATE TABLE {vault} (id VARCHAR(40) NOT NULL PRIMARY KEY,"
            " vault_token VARCHAR(40) NOT NULL, vault_value LONGTEXT NOT NULL,"
            f" created_at {stamp}, updated_at {stamp}, expires_at {stamp},"
            f" soft_deleted_at {stamp}, UNIQUE KEY idx_{vault}_vault_token"
            " (vault_token))",
            f"CREATE TABLE {meta} (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,"
            " object_type VARCHAR(50), object_id VARCHAR(64),"
            " meta_key VARCHAR(50), meta_value TEXT)",
        ]
    if url.startswith("postgresql"):
        id_column = "BIGSERIAL PRIMARY KEY"
        stamp = "TEXT NULL"
    else:
        id_column = "INTEGER PRIMARY KEY AUTOINCREMENT"
        stamp = "DATETIME NULL"
    return [
        f"CREATE TABLE {vault} (id VARCHAR(40) NOT NULL PRIMARY KEY,"
        " vault_token VARCHAR(40) NOT NULL, vault_value TEXT NOT NULL,"
        f" created_at {stamp}, updated_at {stamp}, expires_at {stamp},"
        f" soft_deleted_at {stamp})",
        f"CREATE UNIQUE INDEX idx_{vault}_vault_token ON {vault} (vault_token)",
        f"CREATE TABLE {meta} (id {id_column}, object_type VARCHAR(50),"
        " object_id VARCHAR(64), meta_key VARCHAR(50), meta_value TEXT)",
    ]


async def create_go_tables(url: str, vault: str, meta: str) -> None:
    async with databases.Database(url) as db:
        for statement in _ddl(url, vault, meta):
            await db.execute(statement)


async def drop_go_tables(url: str, vault: str, meta: str) -> None:
    async with databases.Database(url) as db:
        for table in (vault, meta):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await db.execute(f"DROP TABLE IF EXISTS {table}")


def go_row(
    row_id: str | None,
    token: str,
    value: str,
    *,
    created_at: str | None = CREATED,
    updated_at: str | None = CREATED,
    expires_at: str | None = SENTINEL,
    soft_deleted_at: str | None = SENTINEL,
) -> dict[str, Any]:
    return {
        "id": row_id,
        "vault_token": token,
        "vault_value": value,
        "created_at": created_at,
        "updated_at": updated_at,
        "expires_at": expires_at,
        "soft_deleted_at": soft_deleted_at,
    }


async def insert_go_rows(url: str, vault: str, rows: list[dict[str, Any]]) -> None:
    async with databases.Database(url) as db:
        for row in rows:
            await db.execute(
                f"INSERT INTO {vault} (id, vault_token, vault_value, created_at,"
                " updated_at, expires_at, soft_deleted_at) VALUES (:id,"
                " :vault_token, :vault_value, :created_at, :updated_at,"
                " :expires_at, :soft_deleted_at)",
                row,
            )


async def insert_go_setting(url: str, meta: str, key: str, value: str | None) -> None:
    async with databases.Database(url) as db:
        await db.execute(
            f"INSERT INTO {meta} (object_type, object_id, meta_key, meta_value)"
            " VALUES ('vault', 'settings', :key, :value)",
            {"key": key, "value": value},
        )


# The legacy format, written from its description so tests can craft
# values the Go library never wrote.


def _hex(name: str, text: str) -> str:
    return hashlib.new(name, text.encode("utf-8")).hexdigest()


def legacy_key(password: str) -> bytes:
    a = _hex("sha256", _hex("md5", password) * 4)
    b = _hex("sha1", a) * 3
    c = _hex("sha1", b) + _hex("md5", b) + _hex("sha1", b)
    d = _hex("sha256", c)
    key = (
        _hex("sha1", d)
        + _hex("sha256", _hex("md5", d))
        + _hex("sha256", _hex("sha1", d))
        + _hex("md5", d)
    )
    return key.encode("ascii")


def legacy_wrap(framed: bytes, password: str) -> str:
    """Apply the outer layers to already framed bytes: base64, XOR, base64."""
    outer = base64.urlsafe_b64encode(framed)
    key = legacy_key(password)
    xored = bytes(byte ^ key[index % len(key)] for index, byte in enumerate(outer))
    return base64.urlsafe_b64encode(xored).decode("ascii")


def legacy_encode(value: str, password: str) -> str:
    """Encode like the Go library's legacy encoder (padding with letters)."""
    inner = base64.urlsafe_b64encode(value.encode("utf-8"))
    framed = str(len(inner)).encode("ascii") + b"_" + inner
    size = 128
    while size < len(framed):
        size *= 2
    filler = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    padding = bytes(secrets.choice(filler) for _ in range(size - len(framed)))
    return legacy_wrap(framed + padding, password)

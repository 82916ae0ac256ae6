"""Schema creation, explicit migration, version checks and migration from
several processes at once."""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import databases
import pytest
from conftest import FAST_KDF, PASSWORD

import vaultstore_async
from vaultstore_async import AsyncStore, BackendError, MigrationError

LATEST_VERSION = 1
VAULT_COLUMNS = {
    "id",
    "vault_token",
    "vault_value",
    "created_at",
    "updated_at",
    "expires_at",
    "soft_deleted_at",
}
PROCESSES = 8


# Each child process waits for a "go" file, so all of them connect at once,
# then connects a store, writes and reads one token and prints the schema
# version.
CHILD_SCRIPT = """
import asyncio, pathlib, sys
from vaultstore_async import AsyncStore, KdfProfile

url, vault, meta, folder, index = sys.argv[1:6]

async def main():
    pathlib.Path(folder, f"ready_{index}").touch()
    while not pathlib.Path(folder, "go").exists():
        await asyncio.sleep(0.005)
    store = AsyncStore(
        url,
        table_name=vault,
        meta_table_name=meta,
        kdf=KdfProfile.preset("insecure_fast_for_tests"),
    )
    async with store:
        token = await store.create_token("value", "correct horse battery staple")
        assert await store.read_token(token, "correct horse battery staple") == "value"
        print(await store.schema_version())

asyncio.run(main())
"""


def migrations_table(table_names: dict[str, str]) -> str:
    return f"{table_names['table_name']}_migrations"


async def applied_versions(url: str, table_names: dict[str, str]) -> list[int]:
    async with databases.Database(url) as db:
        rows = await db.fetch_all(
            f"SELECT version FROM {migrations_table(table_names)} ORDER BY version"
        )
    return [int(row._mapping["version"]) for row in rows]


async def insert_version(url: str, table_names: dict[str, str], version: int) -> None:
    applied_at: object = datetime(2030, 1, 1, tzinfo=UTC)
    if url.startswith("sqlite"):
        applied_at = "2030-01-01 00:00:00.000000"
    elif url.startswith("mysql"):
        applied_at = datetime(2030, 1, 1)
    async with databases.Database(url) as db:
        await db.execute(
            f"INSERT INTO {migrations_table(table_names)} (version, applied_at)"
            " VALUES (:version, :applied_at)",
            {"version": version, "applied_at": applied_at},
        )


# Fresh schema


async def test_fresh_schema_version(store):
    assert await store.schema_version() == LATEST_VERSION


async def test_fresh_migration_rows(store, db_url, table_names):
    assert await applied_versions(db_url, table_names) == [LATEST_VERSION]


async def test_vault_table_columns(store, db_url, table_names):
    await store.create_token("value", PASSWORD)

    async with databases.Database(db_url) as db:
        row = await db.fetch_one(f"SELECT * FROM {table_names['table_name']}")

    assert set(row._mapping.keys()) == VAULT_COLUMNS


async def test_meta_table_created(store, db_url, table_names):
    async with databases.Database(db_url) as db:
        rows = await db.fetch_val(
            f"SELECT COUNT(*) FROM {table_names['meta_table_name']}"
        )

    assert rows == 0


async def test_vault_token_unique(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD)
    table = table_names["table_name"]

    async with databases.Database(db_url) as db:
        row = await db.fetch_one(
            f"SELECT * FROM {table} WHERE vault_token = :t", {"t": token}
        )
        copy = dict(row._mapping)
        copy["id"] = "another-id"
        columns = ", ".join(copy)
        placeholders = ", ".join(f":{name}" for name in copy)
        with pytest.raises(Exception) as error:
            await db.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", copy
            )

    assert type(error.value).__name__ in {"IntegrityError", "UniqueViolationError"}


# Explicit migration


async def test_no_automigrate_empty(make_store):
    store = await make_store(automigrate=False)

    assert await store.schema_version() == 0


async def test_no_automigrate_no_tables(make_store):
    store = await make_store(automigrate=False)

    with pytest.raises(BackendError):
        await store.create_token("value", PASSWORD)


async def test_explicit_migrate(make_store):
    store = await make_store(automigrate=False)

    assert await store.migrate() == LATEST_VERSION
    assert await store.schema_version() == LATEST_VERSION


async def test_explicit_migrate_then_use(make_store):
    store = await make_store(automigrate=False)
    await store.migrate()

    token = await store.create_token("value", PASSWORD)

    assert await store.read_token(token, PASSWORD) == "value"


async def test_migrate_twice(store, db_url, table_names):
    assert await store.migrate() == LATEST_VERSION
    assert await applied_versions(db_url, table_names) == [LATEST_VERSION]


async def test_connect_existing_tables(make_store):
    first = await make_store()
    token = await first.create_token("value", PASSWORD)

    second = await make_store()

    assert await second.read_token(token, PASSWORD) == "value"


async def test_connect_existing_no_warning(make_store):
    await make_store()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await make_store()

    assert [str(warning.message) for warning in caught] == []


async def test_no_automigrate_existing(make_store):
    first = await make_store()
    token = await first.create_token("value", PASSWORD)

    second = await make_store(automigrate=False)

    assert await second.read_token(token, PASSWORD) == "value"
    assert await second.schema_version() == LATEST_VERSION


# Schema newer than the library supports


async def test_newer_schema_rejected(store, db_url, table_names):
    await insert_version(db_url, table_names, 999)
    newer = AsyncStore(db_url, kdf=FAST_KDF, **table_names)

    with pytest.raises(MigrationError) as error:
        await newer.connect()

    assert "999" in str(error.value)
    assert newer.is_connected is False


async def test_newer_schema_no_automigrate(store, db_url, table_names):
    await insert_version(db_url, table_names, 999)
    newer = AsyncStore(db_url, kdf=FAST_KDF, automigrate=False, **table_names)

    with pytest.raises(MigrationError):
        await newer.connect()


async def test_newer_schema_explicit_migrate(store, db_url, table_names):
    await insert_version(db_url, table_names, 999)

    with pytest.raises(MigrationError):
        await store.migrate()


async def test_newer_schema_rows_kept(store, db_url, table_names):
    await insert_version(db_url, table_names, 999)
    newer = AsyncStore(db_url, kdf=FAST_KDF, **table_names)

    with pytest.raises(MigrationError):
        await newer.connect()

    assert await applied_versions(db_url, table_names) == [LATEST_VERSION, 999]


# Concurrent migration


async def test_processes_migrate_once(db_url, table_names, make_store, tmp_path):
    package_root = str(Path(vaultstore_async.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        path for path in (package_root, env.get("PYTHONPATH")) if path
    )
    folder = tmp_path / "handshake"
    folder.mkdir()
    args = [
        db_url,
        table_names["table_name"],
        table_names["meta_table_name"],
        str(folder),
    ]
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD_SCRIPT,
            *args,
            str(index),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for index in range(PROCESSES)
    ]
    for _ in range(6000):
        if len(list(folder.glob("ready_*"))) == PROCESSES:
            break
        await asyncio.sleep(0.01)
    (folder / "go").touch()
    results = [
        await asyncio.wait_for(child.communicate(), timeout=120) for child in children
    ]

    failures = {
        index: stderr.decode()[-2000:]
        for index, (child, (_, stderr)) in enumerate(
            zip(children, results, strict=True)
        )
        if child.returncode != 0
    }
    versions = {stdout.decode().strip() for stdout, _ in results}
    assert failures == {}
    assert versions == {str(LATEST_VERSION)}
    assert await applied_versions(db_url, table_names) == [LATEST_VERSION]
    async with databases.Database(db_url) as db:
        rows = await db.fetch_val(f"SELECT COUNT(*) FROM {table_names['table_name']}")
    assert rows == PROCESSES

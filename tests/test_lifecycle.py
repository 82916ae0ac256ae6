"""Connecting, closing, ownership of the database and wrapping of driver errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import databases
import pytest
from conftest import FAST_KDF, PASSWORD, drop_tables

import vaultstore_async
from vaultstore_async import (
    AsyncStore,
    BackendError,
    DecryptionError,
    MigrationError,
    PasswordPolicyError,
    StoreClosedError,
    TokenExistsError,
    TokenExpiredError,
    TokenNotFoundError,
    ValidationError,
    VaultStoreError,
)

# One call of every public operation, each with valid arguments.
OPERATIONS = {
    "create_token": lambda s: s.create_token("value", PASSWORD),
    "create_custom_token": lambda s: s.create_custom_token("tk_x", "value", PASSWORD),
    "read_token": lambda s: s.read_token("tk_x", PASSWORD),
    "update_token": lambda s: s.update_token("tk_x", "value", PASSWORD),
    "token_exists": lambda s: s.token_exists("tk_x"),
    "renew_token": lambda s: s.renew_token("tk_x", datetime.now(UTC)),
    "delete_token": lambda s: s.delete_token("tk_x"),
    "soft_delete_token": lambda s: s.soft_delete_token("tk_x"),
    "restore_token": lambda s: s.restore_token("tk_x"),
    "migrate": lambda s: s.migrate(),
    "schema_version": lambda s: s.schema_version(),
}

# Operations that reach the vault table, for the missing-table test.
TABLE_OPERATIONS = [
    name for name in OPERATIONS if name not in {"migrate", "schema_version"}
]


def unreachable_url(url: str, tmp_path) -> str:
    """The same backend on a closed loopback port, or an SQLite file in a
    folder that does not exist."""
    if url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'missing' / 'folder' / 'vault.db'}"
    parts = urlsplit(url)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:1"))


async def wait_for_new_threads(before: set[threading.Thread]) -> None:
    """Wait up to 5 s for threads started since `before` to finish.

    aiosqlite stops the worker thread of a connection that failed to open
    without awaiting it. That thread later reports back to the event loop,
    so the loop must still be running then.
    """
    for _ in range(500):
        if not [t for t in threading.enumerate() if t not in before and t.is_alive()]:
            return
        await asyncio.sleep(0.01)


@asynccontextmanager
async def hidden_table(url: str, table: str) -> AsyncIterator[None]:
    """Rename the table away for the block, so statements on it fail in the
    driver, then put it back for the fixture to drop."""
    async with databases.Database(url) as db:
        await db.execute(f"ALTER TABLE {table} RENAME TO hidden_{table}")
    try:
        yield
    finally:
        async with databases.Database(url) as db:
            await db.execute(f"ALTER TABLE hidden_{table} RENAME TO {table}")


@pytest.fixture
def new_store(db_url, table_names):
    return AsyncStore(db_url, kdf=FAST_KDF, **table_names)


# Connection state


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_unconnected_store_raises(new_store, operation):
    with pytest.raises(StoreClosedError):
        await OPERATIONS[operation](new_store)


async def test_closed_store_raises(make_store):
    store = await make_store()
    await store.close()

    outcomes: dict[str, str] = {}
    for name, operation in OPERATIONS.items():
        try:
            await operation(store)
        except StoreClosedError:
            continue
        except Exception as exc:
            outcomes[name] = type(exc).__name__
        else:
            outcomes[name] = "no error"

    assert outcomes == {}


async def test_reconnect_closed_store(make_store):
    store = await make_store()
    await store.close()

    with pytest.raises(StoreClosedError):
        await store.connect()


async def test_reenter_closed_store(make_store):
    store = await make_store()
    await store.close()

    with pytest.raises(StoreClosedError):
        async with store:
            pass


async def test_connect_never_used_closed(new_store):
    await new_store.close()

    with pytest.raises(StoreClosedError):
        await new_store.connect()


async def test_close_is_idempotent(make_store):
    store = await make_store()

    await store.close()
    await store.close()

    assert store.is_connected is False


async def test_close_unconnected_store(new_store):
    await new_store.close()

    assert new_store.is_connected is False


async def test_connect_twice(make_store):
    store = await make_store()

    await store.connect()

    assert store.is_connected is True
    assert await store.token_exists("tk_x") is False


async def test_context_manager_connects(db_url, table_names):
    store = AsyncStore(db_url, kdf=FAST_KDF, **table_names)
    try:
        async with store as entered:
            connected = store.is_connected
            token = await entered.create_token("value", PASSWORD)
            value = await entered.read_token(token, PASSWORD)
    finally:
        await drop_tables(db_url, table_names)

    assert entered is store
    assert connected is True
    assert value == "value"
    assert store.is_connected is False


async def test_context_manager_closes_on_error(db_url, table_names):
    store = AsyncStore(db_url, kdf=FAST_KDF, **table_names)
    try:
        with pytest.raises(TokenNotFoundError):
            async with store:
                await store.read_token("tk_missing", PASSWORD)
    finally:
        await drop_tables(db_url, table_names)

    assert store.is_connected is False


async def test_data_survives_reconnect(db_url, table_names):
    try:
        async with AsyncStore(db_url, kdf=FAST_KDF, **table_names) as first:
            token = await first.create_token("value", PASSWORD)
        async with AsyncStore(
            db_url, kdf=FAST_KDF, automigrate=False, **table_names
        ) as second:
            value = await second.read_token(token, PASSWORD)
    finally:
        await drop_tables(db_url, table_names)

    assert value == "value"


# Who owns the database


async def test_caller_database_left_open(db_url, table_names):
    database = databases.Database(db_url)
    await database.connect()
    try:
        store = AsyncStore(database, kdf=FAST_KDF, **table_names)
        await store.connect()
        token = await store.create_token("value", PASSWORD)
        await store.close()

        still_connected = database.is_connected
        rows = await database.fetch_val(
            f"SELECT COUNT(*) FROM {table_names['table_name']}"
        )
    finally:
        await database.disconnect()
        await drop_tables(db_url, table_names)

    assert token.startswith("tk_")
    assert still_connected is True
    assert rows == 1


async def test_caller_database_connected_by_store(db_url, table_names):
    database = databases.Database(db_url)
    try:
        async with AsyncStore(database, kdf=FAST_KDF, **table_names) as store:
            token = await store.create_token("value", PASSWORD)
            value = await store.read_token(token, PASSWORD)
        still_connected = database.is_connected
    finally:
        await database.disconnect()
        await drop_tables(db_url, table_names)

    assert value == "value"
    assert still_connected is True


async def test_shared_database_two_stores(db_url, table_names):
    database = databases.Database(db_url)
    await database.connect()
    try:
        first = AsyncStore(database, kdf=FAST_KDF, **table_names)
        second = AsyncStore(database, kdf=FAST_KDF, automigrate=False, **table_names)
        await first.connect()
        await second.connect()
        token = await first.create_token("value", PASSWORD)
        await first.close()
        value = await second.read_token(token, PASSWORD)
        await second.close()
    finally:
        await database.disconnect()
        await drop_tables(db_url, table_names)

    assert value == "value"


async def test_owned_database_disconnected(make_store):
    store = await make_store()
    # The store's own databases.Database has no public handle.
    database = store._backend._db

    await store.close()

    assert database.is_connected is False


# Driver errors


async def test_unreachable_database(db_url, table_names, tmp_path):
    store = AsyncStore(unreachable_url(db_url, tmp_path), kdf=FAST_KDF, **table_names)
    threads = set(threading.enumerate())

    with pytest.raises(BackendError) as error:
        await store.connect()

    await wait_for_new_threads(threads)

    assert error.value.__cause__ is not None
    assert not isinstance(error.value.__cause__, VaultStoreError)
    assert store.is_connected is False


async def test_unreachable_then_closed_error(db_url, table_names, tmp_path):
    store = AsyncStore(unreachable_url(db_url, tmp_path), kdf=FAST_KDF, **table_names)
    threads = set(threading.enumerate())
    with pytest.raises(BackendError):
        await store.connect()
    await wait_for_new_threads(threads)

    with pytest.raises(StoreClosedError):
        await store.read_token("tk_x", PASSWORD)


DRIVER_MODULES = {"sqlite3", "asyncpg", "pymysql", "aiomysql"}


async def test_missing_table_backend_error(store, db_url, table_names):
    outcomes: dict[str, str] = {}
    async with hidden_table(db_url, table_names["table_name"]):
        for name in TABLE_OPERATIONS:
            try:
                await OPERATIONS[name](store)
            except BackendError as exc:
                cause = exc.__cause__
                module = type(cause).__module__.split(".")[0]
                if module not in DRIVER_MODULES:
                    outcomes[name] = f"cause is {type(cause).__name__}"
            except Exception as exc:
                outcomes[name] = type(exc).__name__
            else:
                outcomes[name] = "no error"

    assert outcomes == {}


async def test_store_usable_after_error(store, db_url, table_names):
    # The connection that saw the error goes back to the pool in a usable state.
    async with hidden_table(db_url, table_names["table_name"]):
        with pytest.raises(BackendError):
            await store.token_exists("tk_x")

    token = await store.create_token("value", PASSWORD)

    assert await store.read_token(token, PASSWORD) == "value"


# Exception classes


@pytest.mark.parametrize(
    "name",
    [
        "VaultStoreError",
        "ValidationError",
        "PasswordPolicyError",
        "StoreClosedError",
        "MigrationError",
        "TokenNotFoundError",
        "TokenExistsError",
        "TokenExpiredError",
        "DecryptionError",
        "BackendError",
    ],
)
def test_error_exported(name):
    error = getattr(vaultstore_async, name)

    assert issubclass(error, VaultStoreError)
    assert name in vaultstore_async.__all__


@pytest.mark.parametrize(
    ("error", "base"),
    [
        (ValidationError, ValueError),
        (PasswordPolicyError, ValidationError),
        (StoreClosedError, RuntimeError),
        (MigrationError, VaultStoreError),
        (TokenNotFoundError, VaultStoreError),
        (TokenExistsError, VaultStoreError),
        (TokenExpiredError, VaultStoreError),
        (DecryptionError, VaultStoreError),
        (BackendError, VaultStoreError),
        (VaultStoreError, Exception),
    ],
)
def test_error_bases(error, base):
    assert issubclass(error, base)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (TokenNotFoundError, TokenExistsError),
        (DecryptionError, TokenExpiredError),
        (BackendError, MigrationError),
        (StoreClosedError, ValidationError),
    ],
)
def test_errors_distinct(first, second):
    assert not issubclass(first, second)
    assert not issubclass(second, first)

"""Backend selection and per-test stores.

SQLite always runs, on a file in the test's temporary folder. PostgreSQL
and MariaDB/MySQL run when their URLs are set:

    VAULTSTORE_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test
    VAULTSTORE_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/test

Each test gets tables of its own, dropped afterwards, so tests never see
each other's rows and concurrency tests need no cleanup of their own.
"""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import databases
import pytest
import pytest_asyncio

from vaultstore_async import AsyncStore, KdfProfile

FAST_KDF = KdfProfile.preset("insecure_fast_for_tests")
PASSWORD = "correct horse battery staple"
OTHER_PASSWORD = "another long password 5678"

ENV_URLS = {
    "postgresql": "VAULTSTORE_TEST_POSTGRES_URL",
    "mysql": "VAULTSTORE_TEST_MYSQL_URL",
}


def backend_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'vault.db'}"
    url = os.environ.get(ENV_URLS[backend])
    if not url:
        pytest.skip(f"set {ENV_URLS[backend]} to run the {backend} tests")
    return url


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> str:
    return backend_url(backend, tmp_path)


@pytest.fixture
def table_names() -> dict[str, str]:
    suffix = secrets.token_hex(4)
    return {"table_name": f"v_{suffix}", "meta_table_name": f"m_{suffix}"}


async def drop_tables(url: str, names: dict[str, str]) -> None:
    tables = [
        names["table_name"],
        names["meta_table_name"],
        f"{names['table_name']}_migrations",
        f"{names['table_name']}_go_ledger",
    ]
    async with databases.Database(url) as db:
        for table in tables:
            with warnings.catch_warnings():
                # MariaDB notes a missing table as a warning even with IF EXISTS.
                warnings.simplefilter("ignore")
                await db.execute(f"DROP TABLE IF EXISTS {table}")


MakeStore = Callable[..., Awaitable[AsyncStore]]


@pytest_asyncio.fixture
async def make_store(
    db_url: str, table_names: dict[str, str]
) -> AsyncIterator[MakeStore]:
    """Return a factory of connected stores on this test's tables."""
    made: list[AsyncStore] = []

    async def factory(**options: Any) -> AsyncStore:
        settings: dict[str, Any] = {"kdf": FAST_KDF, **table_names, **options}
        store = AsyncStore(db_url, **settings)
        await store.connect()
        made.append(store)
        return store

    try:
        yield factory
    finally:
        for store in made:
            await store.close()
        await drop_tables(db_url, table_names)


@pytest_asyncio.fixture
async def store(make_store: MakeStore) -> AsyncStore:
    return await make_store()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def cli_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A backend URL for command-line tests, which run as subprocesses."""
    return backend_url(str(request.param), tmp_path)


@pytest_asyncio.fixture
async def cli_tables(
    cli_url: str, table_names: dict[str, str]
) -> AsyncIterator[list[str]]:
    yield [
        "--table",
        table_names["table_name"],
        "--meta-table",
        table_names["meta_table_name"],
    ]
    await drop_tables(cli_url, table_names)

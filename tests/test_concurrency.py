"""Concurrent callers on one token, from several stores and tasks."""

from __future__ import annotations

import asyncio

import databases
from conftest import OTHER_PASSWORD, PASSWORD

from vaultstore_async import DecryptionError, TokenExistsError, TokenNotFoundError

CALLERS = 10


async def make_stores(make_store, count: int = CALLERS) -> list:
    """Return `count` connected stores on the test's tables, each with its
    own connection pool."""
    first = await make_store()
    rest = [await make_store(automigrate=False) for _ in range(count - 1)]
    return [first, *rest]


def outcome_counts(results: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        name = type(result).__name__ if isinstance(result, BaseException) else "ok"
        counts[name] = counts.get(name, 0) + 1
    return counts


async def test_custom_token_race_stores(make_store):
    stores = await make_stores(make_store)

    results = await asyncio.gather(
        *(
            store.create_custom_token("tk_race", f"value {index}", PASSWORD)
            for index, store in enumerate(stores)
        ),
        return_exceptions=True,
    )

    assert outcome_counts(results) == {"ok": 1, "TokenExistsError": CALLERS - 1}
    winner = next(index for index, result in enumerate(results) if result is None)
    assert await stores[0].read_token("tk_race", PASSWORD) == f"value {winner}"


async def test_custom_token_race_tasks(store):
    results = await asyncio.gather(
        *(
            store.create_custom_token("tk_race", f"value {index}", PASSWORD)
            for index in range(CALLERS)
        ),
        return_exceptions=True,
    )

    assert outcome_counts(results) == {"ok": 1, "TokenExistsError": CALLERS - 1}


async def test_custom_token_race_one_row(make_store, db_url, table_names):
    stores = await make_stores(make_store)

    await asyncio.gather(
        *(store.create_custom_token("tk_race", "value", PASSWORD) for store in stores),
        return_exceptions=True,
    )

    async with databases.Database(db_url) as db:
        rows = await db.fetch_val(
            f"SELECT COUNT(*) FROM {table_names['table_name']}"
            " WHERE vault_token = :token",
            {"token": "tk_race"},
        )
    assert rows == 1


async def test_race_on_soft_deleted(make_store):
    stores = await make_stores(make_store)
    await stores[0].create_custom_token("tk_race", "original", PASSWORD)
    await stores[0].soft_delete_token("tk_race")

    results = await asyncio.gather(
        *(store.create_custom_token("tk_race", "new", PASSWORD) for store in stores),
        return_exceptions=True,
    )

    assert outcome_counts(results) == {"TokenExistsError": CALLERS}
    assert all(isinstance(result, TokenExistsError) for result in results)


async def test_create_tokens_in_parallel(store):
    count = 50

    tokens = await asyncio.gather(
        *(store.create_token(f"value {index}", PASSWORD) for index in range(count))
    )
    values = await asyncio.gather(
        *(store.read_token(token, PASSWORD) for token in tokens)
    )

    assert len(set(tokens)) == count
    assert values == [f"value {index}" for index in range(count)]


async def test_soft_delete_race(make_store):
    stores = await make_stores(make_store)
    await stores[0].create_custom_token("tk_race", "value", PASSWORD)

    results = await asyncio.gather(
        *(store.soft_delete_token("tk_race") for store in stores),
        return_exceptions=True,
    )

    assert outcome_counts(results) == {"ok": 1, "TokenNotFoundError": CALLERS - 1}


async def test_restore_race(make_store):
    stores = await make_stores(make_store)
    await stores[0].create_custom_token("tk_race", "value", PASSWORD)
    await stores[0].soft_delete_token("tk_race")

    results = await asyncio.gather(
        *(store.restore_token("tk_race") for store in stores),
        return_exceptions=True,
    )

    assert outcome_counts(results) == {"ok": 1, "TokenNotFoundError": CALLERS - 1}
    assert await stores[0].read_token("tk_race", PASSWORD) == "value"


async def test_delete_race(make_store):
    stores = await make_stores(make_store)
    await stores[0].create_custom_token("tk_race", "value", PASSWORD)

    results = await asyncio.gather(*(store.delete_token("tk_race") for store in stores))

    assert sorted(results) == [False] * (CALLERS - 1) + [True]


async def test_update_race_all_apply(make_store):
    # Each writer loses at most once to each other writer, which stays
    # below the store's retry limit with four writers.
    stores = await make_stores(make_store, count=4)
    await stores[0].create_custom_token("tk_race", "original", PASSWORD)
    written = {f"value {index}" for index in range(len(stores))}

    results = await asyncio.gather(
        *(
            store.update_token("tk_race", f"value {index}", PASSWORD)
            for index, store in enumerate(stores)
        ),
        return_exceptions=True,
    )

    assert outcome_counts(results) == {"ok": len(stores)}
    assert await stores[0].read_token("tk_race", PASSWORD) in written


async def test_password_change_race(make_store):
    # The second change must not overwrite the first one unseen: after the
    # first commits, the old password no longer opens the value.
    stores = await make_stores(make_store, count=2)
    await stores[0].create_custom_token("tk_race", "original", PASSWORD)
    new_passwords = [OTHER_PASSWORD, "a third long password 9012"]

    results = await asyncio.gather(
        *(
            store.update_token("tk_race", f"value {index}", PASSWORD, new_password=new)
            for index, (store, new) in enumerate(
                zip(stores, new_passwords, strict=True)
            )
        ),
        return_exceptions=True,
    )

    assert outcome_counts(results) == {"ok": 1, "DecryptionError": 1}
    winner = next(index for index, result in enumerate(results) if result is None)
    assert (
        await stores[0].read_token("tk_race", new_passwords[winner])
        == f"value {winner}"
    )


async def test_update_delete_race(make_store):
    stores = await make_stores(make_store, count=2)
    await stores[0].create_custom_token("tk_race", "original", PASSWORD)

    update, delete = await asyncio.gather(
        stores[0].update_token("tk_race", "new", PASSWORD),
        stores[1].delete_token("tk_race"),
        return_exceptions=True,
    )

    assert delete is True
    assert update is None or isinstance(update, TokenNotFoundError)
    assert await stores[0].token_exists("tk_race") is False


async def test_reads_share_derivation(make_store):
    writer, reader = await make_stores(make_store, count=2)
    token = await writer.create_token("value", PASSWORD)

    values = await asyncio.gather(
        *(reader.read_token(token, PASSWORD) for _ in range(CALLERS))
    )

    assert values == ["value"] * CALLERS
    assert reader.stats()["key_derivations"] == 1


async def test_parallel_wrong_passwords(store):
    token = await store.create_token("value", PASSWORD)

    results = await asyncio.gather(
        *(
            store.read_token(token, f"wrong password number {i}")
            for i in range(CALLERS)
        ),
        return_exceptions=True,
    )

    assert all(isinstance(result, DecryptionError) for result in results)


async def test_stores_migrate_together(make_store, db_url, table_names):
    stores = await asyncio.gather(*(make_store() for _ in range(8)))
    tokens = await asyncio.gather(
        *(store.create_token("value", PASSWORD) for store in stores)
    )

    async with databases.Database(db_url) as db:
        versions = await db.fetch_all(
            f"SELECT version FROM {table_names['table_name']}_migrations"
        )
    assert [int(row._mapping["version"]) for row in versions] == [1]
    assert len(set(tokens)) == 8

"""Vault settings on every backend: get, set, delete, list, concurrency."""

from __future__ import annotations

import asyncio

import pytest
from _feature_helpers import AWKWARD_KEYS, raw_count
from conftest import PASSWORD

from vaultstore_async import ValidationError


async def setting_rows(db_url, table_names, key: str | None = None) -> int:
    meta = table_names["meta_table_name"]
    if key is None:
        return await raw_count(db_url, meta)
    return await raw_count(db_url, meta, "meta_key = :key", {"key": key})


async def test_get_setting_missing(store):
    assert await store.get_setting("rotation.interval") is None


async def test_set_setting_round_trip(store):
    await store.set_setting("rotation.interval", "30d")

    assert await store.get_setting("rotation.interval") == "30d"


async def test_set_setting_overwrites(store, db_url, table_names):
    await store.set_setting("rotation.interval", "30d")

    await store.set_setting("rotation.interval", "90d")

    assert await store.get_setting("rotation.interval") == "90d"
    assert await setting_rows(db_url, table_names, "rotation.interval") == 1


async def test_set_setting_same_value(store, db_url, table_names):
    await store.set_setting("owner", "ops")

    await store.set_setting("owner", "ops")

    assert await store.get_setting("owner") == "ops"
    assert await setting_rows(db_url, table_names, "owner") == 1


@pytest.mark.parametrize(
    "value",
    [
        "",
        "värde 🔑 'single' \"double\" `back` \\ %s %(name)s :name ?",
        "line one\nline two\r\nline three\ttab",
        "x" * 100_000,
        "cafe\u0301",
    ],
    ids=["empty", "awkward", "newlines", "long", "decomposed"],
)
async def test_set_setting_values(store, value):
    await store.set_setting("key", value)

    assert await store.get_setting("key") == value


async def test_set_setting_one_statement(store):
    await store.set_setting("owner", "ops")
    before = store.stats()["statements"]

    await store.set_setting("owner", "security")
    await store.set_setting("team", "platform")

    assert store.stats()["statements"] - before == 2


async def test_set_setting_keeps_others(store):
    await store.set_setting("first", "1")
    await store.set_setting("second", "2")

    await store.set_setting("first", "one")

    assert await store.get_setting("second") == "2"


async def test_delete_setting(store):
    await store.set_setting("owner", "ops")

    assert await store.delete_setting("owner") is True
    assert await store.get_setting("owner") is None


async def test_delete_setting_missing(store):
    assert await store.delete_setting("owner") is False


async def test_delete_setting_twice(store):
    await store.set_setting("owner", "ops")
    await store.delete_setting("owner")

    assert await store.delete_setting("owner") is False


async def test_delete_setting_keeps_others(store):
    await store.set_setting("owner", "ops")
    await store.set_setting("team", "platform")

    await store.delete_setting("owner")

    assert await store.list_settings() == {"team": "platform"}


async def test_set_after_delete(store):
    await store.set_setting("owner", "ops")
    await store.delete_setting("owner")

    await store.set_setting("owner", "security")

    assert await store.get_setting("owner") == "security"


async def test_list_settings_fresh_store(store):
    assert await store.list_settings() == {}


async def test_list_settings_after_migrate(store):
    await store.migrate()

    assert await store.list_settings() == {}


async def test_list_settings_values(store):
    await store.set_setting("owner", "ops")
    await store.set_setting("team", "platform")
    await store.set_setting("owner", "security")

    assert await store.list_settings() == {"owner": "security", "team": "platform"}


async def test_list_settings_ignores_tokens(store):
    await store.create_token("secret", PASSWORD)

    assert await store.list_settings() == {}


async def test_settings_awkward_keys(store):
    expected = {key: f"value {index}" for index, key in enumerate(AWKWARD_KEYS)}
    for key, value in expected.items():
        await store.set_setting(key, value)

    wrong = {}
    for key, value in expected.items():
        got = await store.get_setting(key)
        if got != value:
            wrong[key] = got

    assert wrong == {}
    assert await store.list_settings() == expected


async def test_delete_setting_awkward_exact(store):
    for key in AWKWARD_KEYS:
        await store.set_setting(key, "value")

    for key in ("plain", "pl%n", "café", "ß", ":name"):
        assert await store.delete_setting(key) is True, key

    remaining = set(AWKWARD_KEYS) - {"plain", "pl%n", "café", "ß", ":name"}
    assert set(await store.list_settings()) == remaining


async def test_settings_key_255_chars(store):
    key = "k" * 255

    await store.set_setting(key, "longest")

    assert await store.get_setting(key) == "longest"


async def test_settings_shared_between_stores(make_store):
    first = await make_store()
    second = await make_store()

    await first.set_setting("owner", "ops")

    assert await second.get_setting("owner") == "ops"


async def test_set_setting_concurrent_stores(make_store, db_url, table_names):
    stores = [await make_store() for _ in range(20)]
    values = [f"writer {index}" for index in range(20)]

    await asyncio.gather(
        *(
            store.set_setting("contended", value)
            for store, value in zip(stores, values, strict=True)
        )
    )

    assert await setting_rows(db_url, table_names, "contended") == 1
    assert await setting_rows(db_url, table_names) == 1
    assert await stores[0].get_setting("contended") in values


async def test_set_setting_concurrent_existing(make_store, db_url, table_names):
    stores = [await make_store() for _ in range(20)]
    await stores[0].set_setting("contended", "initial")
    values = [f"writer {index}" for index in range(20)]

    await asyncio.gather(
        *(
            store.set_setting("contended", value)
            for store, value in zip(stores, values, strict=True)
        )
    )

    assert await setting_rows(db_url, table_names, "contended") == 1
    assert await stores[0].get_setting("contended") in values


async def test_set_setting_concurrent_one_store(store, db_url, table_names):
    values = [f"task {index}" for index in range(20)]

    await asyncio.gather(*(store.set_setting("contended", value) for value in values))

    assert await setting_rows(db_url, table_names, "contended") == 1
    assert await store.get_setting("contended") in values


INVALID_KEYS = ["", "k" * 256, "🔑" * 256, None, 12, b"key", "a\x00b", "\ud800"]
INVALID_KEY_IDS = [
    "empty",
    "long",
    "long-emoji",
    "none",
    "int",
    "bytes",
    "nul",
    "surrogate",
]


@pytest.mark.parametrize("key", INVALID_KEYS, ids=INVALID_KEY_IDS)
async def test_get_setting_invalid_key(store, key):
    with pytest.raises(ValidationError):
        await store.get_setting(key)


@pytest.mark.parametrize("key", INVALID_KEYS, ids=INVALID_KEY_IDS)
async def test_set_setting_invalid_key(store, key):
    with pytest.raises(ValidationError):
        await store.set_setting(key, "value")

    assert await store.list_settings() == {}


@pytest.mark.parametrize("key", INVALID_KEYS, ids=INVALID_KEY_IDS)
async def test_delete_setting_invalid_key(store, key):
    with pytest.raises(ValidationError):
        await store.delete_setting(key)


@pytest.mark.parametrize(
    "value",
    [None, 12, b"bytes", ["list"], "a\x00b", "\udc00"],
    ids=["none", "int", "bytes", "list", "nul", "surrogate"],
)
async def test_set_setting_invalid_value(store, value):
    with pytest.raises(ValidationError):
        await store.set_setting("key", value)

    assert await store.get_setting("key") is None

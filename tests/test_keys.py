"""Key cache, key reuse, the derivation pool and the stats() counters."""

from __future__ import annotations

import asyncio
import threading

import pytest
from conftest import PASSWORD, MakeStore

from vaultstore_async import AsyncStore, KdfExecutor, KdfProfile, ValidationError
from vaultstore_async._kdf import shared_executor


def delta(store: AsyncStore, before: dict[str, int]) -> dict[str, int]:
    after = store.stats()
    return {name: after[name] - before[name] for name in after}


async def test_read_is_one_statement(store: AsyncStore) -> None:
    token = await store.create_token("v", PASSWORD)
    before = store.stats()
    await store.read_token(token, PASSWORD)
    assert delta(store, before)["statements"] == 1


async def test_create_is_one_statement(store: AsyncStore) -> None:
    before = store.stats()
    await store.create_token("v", PASSWORD)
    used = delta(store, before)
    assert used["statements"] == 1
    assert used["rows_written"] == 1


async def test_update_is_two_statements(store: AsyncStore) -> None:
    token = await store.create_token("v", PASSWORD)
    before = store.stats()
    await store.update_token(token, "w", PASSWORD)
    assert delta(store, before)["statements"] == 2


async def test_warm_read_skips_derivation(store: AsyncStore) -> None:
    token = await store.create_token("v", PASSWORD)
    store.clear_key_cache()
    before = store.stats()
    await store.read_token(token, PASSWORD)
    await store.read_token(token, PASSWORD)
    await store.read_token(token, PASSWORD)
    used = delta(store, before)
    assert used["key_derivations"] == 1
    assert used["key_cache_misses"] == 1
    assert used["key_cache_hits"] == 2


async def test_write_key_cached_for_read(store: AsyncStore) -> None:
    token = await store.create_token("v", PASSWORD)
    before = store.stats()
    await store.read_token(token, PASSWORD)
    assert delta(store, before)["key_derivations"] == 0


async def test_cache_size_zero_disables(make_store: MakeStore) -> None:
    store = await make_store(key_cache_size=0)
    token = await store.create_token("v", PASSWORD)
    before = store.stats()
    await store.read_token(token, PASSWORD)
    await store.read_token(token, PASSWORD)
    assert delta(store, before)["key_derivations"] == 2


async def test_cache_is_bounded(make_store: MakeStore) -> None:
    store = await make_store(key_cache_size=2)
    tokens = [await store.create_token(str(i), PASSWORD) for i in range(3)]
    before = store.stats()
    await store.read_token(tokens[0], PASSWORD)
    assert delta(store, before)["key_derivations"] == 1


async def test_cache_ttl_expires(make_store: MakeStore) -> None:
    store = await make_store(key_cache_ttl=0.05)
    token = await store.create_token("v", PASSWORD)
    await asyncio.sleep(0.1)
    before = store.stats()
    await store.read_token(token, PASSWORD)
    assert delta(store, before)["key_derivations"] == 1


async def test_concurrent_reads_share_derivation(store: AsyncStore) -> None:
    token = await store.create_token("v", PASSWORD)
    store.clear_key_cache()
    before = store.stats()
    values = await asyncio.gather(
        *(store.read_token(token, PASSWORD) for _ in range(8))
    )
    assert values == ["v"] * 8
    assert delta(store, before)["key_derivations"] == 1


async def test_reuse_bounds_write_derivations(make_store: MakeStore) -> None:
    store = await make_store(key_reuse_writes=50)
    before = store.stats()
    tokens = [await store.create_token(str(i), PASSWORD) for i in range(100)]
    assert delta(store, before)["key_derivations"] == 2
    store.clear_key_cache()
    before = store.stats()
    values = await store.read_tokens(tokens, PASSWORD)
    assert len(values) == 100
    assert delta(store, before)["key_derivations"] == 2


async def test_no_reuse_derives_per_write(store: AsyncStore) -> None:
    before = store.stats()
    for i in range(5):
        await store.create_token(str(i), PASSWORD)
    assert delta(store, before)["key_derivations"] == 5


async def test_reuse_shares_salt_only(make_store: MakeStore) -> None:
    store = await make_store(key_reuse_writes=10)
    first = await store.create_token("same", PASSWORD)
    second = await store.create_token("same", PASSWORD)
    one = await store.find_record_by_token(first)
    two = await store.find_record_by_token(second)
    assert one is not None and two is not None
    assert one.value.split(":")[4] == two.value.split(":")[4]
    assert one.value.split(":")[5] != two.value.split(":")[5]


async def test_change_password_with_reuse(make_store: MakeStore) -> None:
    store = await make_store(key_reuse_writes=1000)
    for i in range(200):
        await store.create_token(str(i), PASSWORD)
    store.clear_key_cache()
    before = store.stats()
    changed = await store.change_password(PASSWORD, "the next long password 99")
    assert changed == 200
    assert delta(store, before)["key_derivations"] <= 4 + 1


async def test_stats_counts_rows(store: AsyncStore) -> None:
    tokens = [await store.create_token(str(i), PASSWORD) for i in range(3)]
    before = store.stats()
    await store.read_tokens(tokens, PASSWORD)
    used = delta(store, before)
    assert used["statements"] == 1
    assert used["rows_read"] == 3


async def test_event_loop_runs_during_derivation() -> None:
    executor = KdfExecutor(workers=1, memory_budget=64 * 1024 * 1024)
    profile = KdfProfile(opslimit=2, memlimit=32 * 1024 * 1024)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await executor.derive(b"password", b"0123456789abcdef", profile)
    task.cancel()
    assert ticks > 10


async def test_executor_caps_concurrency() -> None:
    executor = KdfExecutor(workers=2, memory_budget=16 * 1024)
    profile = KdfProfile(opslimit=1, memlimit=8 * 1024)
    active = peak = 0
    lock = threading.Lock()
    original = executor._derive

    def counting(password: bytes, salt: bytes, prof: KdfProfile) -> bytes:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            return original(password, salt, prof)
        finally:
            with lock:
                active -= 1

    executor._derive = counting  # type: ignore[method-assign]
    salts = [bytes([i]) * 16 for i in range(16)]
    await asyncio.gather(*(executor.derive(b"pw", salt, profile) for salt in salts))
    assert peak <= 2
    assert executor.runs == 16


def test_memory_budget_limits_parallel_runs() -> None:
    executor = KdfExecutor(workers=4, memory_budget=8 * 1024)
    profile = KdfProfile(opslimit=1, memlimit=8 * 1024)

    async def run() -> None:
        salts = [bytes([i]) * 16 for i in range(8)]
        await asyncio.gather(*(executor.derive(b"pw", s, profile) for s in salts))

    asyncio.run(run())
    assert executor.runs == 8


def test_shared_executor_sized_by_cpu() -> None:
    executor = shared_executor()
    assert executor.workers >= 1
    assert shared_executor() is executor


def test_bad_cache_settings_rejected() -> None:
    for options in (
        {"key_cache_size": -1},
        {"key_cache_ttl": 0},
        {"key_reuse_writes": "10"},
    ):
        with pytest.raises(ValidationError):
            AsyncStore("sqlite:///unused.db", **options)

"""change_password on every backend: re-encryption, policy, progress,
concurrent updates and cancellation part way."""

from __future__ import annotations

import asyncio
import contextlib

import databases
import pytest
from _feature_helpers import (
    NEW_PASSWORD,
    create_tokens,
    hours_from_now,
    passwords_opening,
    run_in_workers,
)
from conftest import OTHER_PASSWORD, PASSWORD

from vaultstore_async import (
    DecryptionError,
    PasswordPolicy,
    PasswordPolicyError,
    Record,
    RecordQuery,
    TokenExpiredError,
    ValidationError,
)

ALL_ROWS = RecordQuery(include_soft_deleted=True)


async def stored_values(store) -> dict[str, str]:
    """Return {id: stored text} of every row, soft-deleted ones included."""
    return {record.id: record.value for record in await store.list_records(ALL_ROWS)}


# Small tables


async def test_change_password_rekeys_rows(store):
    tokens = await create_tokens(store, ["a", "b", "c"], PASSWORD)

    changed = await store.change_password(PASSWORD, NEW_PASSWORD)

    assert changed == 3
    assert await store.read_tokens(tokens, NEW_PASSWORD) == dict(
        zip(tokens, ["a", "b", "c"], strict=True)
    )


async def test_change_password_old_no_longer_opens(store):
    token = await store.create_token("value", PASSWORD)

    await store.change_password(PASSWORD, NEW_PASSWORD)

    with pytest.raises(DecryptionError):
        await store.read_token(token, PASSWORD)


async def test_change_password_other_rows_untouched(store):
    await create_tokens(store, ["mine 1", "mine 2"], PASSWORD)
    theirs = await create_tokens(store, ["theirs 1", "theirs 2"], OTHER_PASSWORD)
    before = {record.token: record for record in await store.list_records(ALL_ROWS)}

    changed = await store.change_password(PASSWORD, NEW_PASSWORD)

    after = {record.token: record for record in await store.list_records(ALL_ROWS)}
    assert changed == 2
    for token in theirs:
        assert after[token] == before[token]
    assert await store.read_tokens(theirs, OTHER_PASSWORD) == {
        theirs[0]: "theirs 1",
        theirs[1]: "theirs 2",
    }


async def test_change_password_soft_deleted_rows(store):
    token = await store.create_token("hidden", PASSWORD)
    await store.soft_delete_token(token)

    changed = await store.change_password(PASSWORD, NEW_PASSWORD)

    await store.restore_token(token)
    assert changed == 1
    assert await store.read_token(token, NEW_PASSWORD) == "hidden"


async def test_change_password_expired_rows(store):
    token = await store.create_token("old", PASSWORD, expires_at=hours_from_now(-1))

    changed = await store.change_password(PASSWORD, NEW_PASSWORD)

    assert changed == 1
    with pytest.raises(TokenExpiredError):
        await store.read_token(token, NEW_PASSWORD)
    with pytest.raises(DecryptionError):
        await store.read_token(token, PASSWORD)


async def test_change_password_no_matching_rows(store):
    await create_tokens(store, ["theirs"], OTHER_PASSWORD)
    before = await stored_values(store)

    changed = await store.change_password(PASSWORD, NEW_PASSWORD)

    assert changed == 0
    assert await stored_values(store) == before


async def test_change_password_empty_table(store):
    assert await store.change_password(PASSWORD, NEW_PASSWORD) == 0


async def test_change_password_twice(store):
    await create_tokens(store, ["a", "b"], PASSWORD)
    await store.change_password(PASSWORD, NEW_PASSWORD)

    assert await store.change_password(PASSWORD, NEW_PASSWORD) == 0


async def test_change_password_keeps_expiry(store):
    expires = hours_from_now(5)
    token = await store.create_token("value", PASSWORD, expires_at=expires)
    before = await store.find_record_by_token(token)

    await store.change_password(PASSWORD, NEW_PASSWORD)

    after = await store.find_record_by_token(token)
    assert before is not None and after is not None
    assert after.expires_at == expires
    assert after.created_at == before.created_at
    assert after.id == before.id


async def test_change_password_skips_damaged_row(store):
    token = await store.create_token("value", PASSWORD)
    damaged = Record(
        id="damaged-row", token="damaged-token", value="not a stored value"
    )
    await store.create_record(damaged)

    changed = await store.change_password(PASSWORD, NEW_PASSWORD)

    assert changed == 1
    assert await store.read_token(token, NEW_PASSWORD) == "value"
    found = await store.find_record_by_id("damaged-row")
    assert found is not None
    assert found.value == "not a stored value"


@pytest.mark.parametrize("new_password", ["", "short", "fifteen chars!!"])
async def test_change_password_weak_new(store, new_password):
    await create_tokens(store, ["value"], PASSWORD)
    before = await stored_values(store)

    with pytest.raises(PasswordPolicyError):
        await store.change_password(PASSWORD, new_password)

    assert await stored_values(store) == before


async def test_change_password_weak_old(make_store):
    lenient = await make_store(password_policy=PasswordPolicy(min_length=1))
    tokens = await create_tokens(lenient, ["a", "b"], "pw")
    strict = await make_store()

    changed = await strict.change_password("pw", NEW_PASSWORD)

    assert changed == 2
    assert await strict.read_tokens(tokens, NEW_PASSWORD) == {
        tokens[0]: "a",
        tokens[1]: "b",
    }


@pytest.mark.parametrize(
    ("old_password", "new_password", "options"),
    [
        (None, NEW_PASSWORD, {}),
        (b"bytes", NEW_PASSWORD, {}),
        (PASSWORD, None, {}),
        (PASSWORD, 12, {}),
        (PASSWORD, NEW_PASSWORD, {"progress": "not callable"}),
        (PASSWORD, NEW_PASSWORD, {"progress": 3}),
    ],
    ids=[
        "none-old",
        "bytes-old",
        "none-new",
        "int-new",
        "str-progress",
        "int-progress",
    ],
)
async def test_change_password_invalid_arguments(
    store, old_password, new_password, options
):
    await create_tokens(store, ["value"], PASSWORD)
    before = await stored_values(store)

    with pytest.raises(ValidationError):
        await store.change_password(old_password, new_password, **options)

    assert await stored_values(store) == before


# A few thousand rows


@pytest.fixture
async def big_vault(make_store):
    """2,400 rows: 1,600 under PASSWORD (60 soft-deleted, 40 expired) and
    800 under OTHER_PASSWORD (40 soft-deleted)."""
    store = await make_store(key_reuse_writes=1000)
    mine_values = [f"mine {index}" for index in range(1560)]
    mine = await create_tokens(store, mine_values, PASSWORD)
    expired_values = [f"expired {index}" for index in range(40)]
    expired = await create_tokens(
        store, expired_values, PASSWORD, expires_at=hours_from_now(-1)
    )
    theirs_values = [f"theirs {index}" for index in range(800)]
    theirs = await create_tokens(store, theirs_values, OTHER_PASSWORD)
    hidden = mine[:60] + theirs[:40]
    await run_in_workers(hidden, store.soft_delete_token)
    return {
        "store": store,
        "mine": dict(zip(mine, mine_values, strict=True)),
        "expired": dict(zip(expired, expired_values, strict=True)),
        "theirs": dict(zip(theirs, theirs_values, strict=True)),
        "hidden": set(hidden),
    }


async def test_change_password_many_rows(big_vault):
    store = big_vault["store"]
    theirs_before = {
        record.token: record.value
        for record in await store.list_records(ALL_ROWS)
        if record.token in big_vault["theirs"]
    }
    calls: list[tuple[int, int]] = []
    rows_read_before = store.stats()["rows_read"]

    def record_progress(examined: int, changed: int) -> None:
        calls.append((examined, changed))

    changed = await store.change_password(
        PASSWORD, NEW_PASSWORD, progress=record_progress
    )

    rows_read = store.stats()["rows_read"] - rows_read_before
    examined = [call[0] for call in calls]
    done = [call[1] for call in calls]
    assert changed == 1600
    assert rows_read == 2400
    assert len(calls) >= 2
    assert calls[-1] == (2400, 1600)
    assert examined == sorted(set(examined))
    assert done == sorted(done)
    assert all(call[1] <= call[0] for call in calls)
    theirs_after = {
        record.token: record.value
        for record in await store.list_records(ALL_ROWS)
        if record.token in big_vault["theirs"]
    }
    assert theirs_after == theirs_before


async def test_change_password_many_rows_readable(big_vault):
    store = big_vault["store"]

    await store.change_password(PASSWORD, NEW_PASSWORD)

    await run_in_workers(sorted(big_vault["hidden"]), store.restore_token)
    mine = big_vault["mine"]
    theirs = big_vault["theirs"]
    assert await store.read_tokens(list(mine), NEW_PASSWORD) == mine
    assert await store.read_tokens(list(theirs), OTHER_PASSWORD) == theirs
    opened_old = await passwords_opening(store, list(mine), [PASSWORD])
    assert [token for token, found in opened_old.items() if found] == []
    opened_expired = await passwords_opening(
        store, list(big_vault["expired"]), [PASSWORD, NEW_PASSWORD]
    )
    assert set(map(tuple, opened_expired.values())) == {(NEW_PASSWORD,)}


# Concurrency and cancellation


async def test_change_password_races_update_token(make_store):
    store = await make_store(key_reuse_writes=1000)
    values = [f"original {index}" for index in range(800)]
    tokens = await create_tokens(store, values, PASSWORD)
    expected = dict(zip(tokens, values, strict=True))

    async def update_three_times(token: str) -> None:
        for round_number in range(3):
            value = f"{token} update {round_number}"
            try:
                await store.update_token(token, value, PASSWORD)
            except DecryptionError:
                # change_password re-encrypted the row first, so the
                # row is now under NEW_PASSWORD.
                await store.update_token(token, value, NEW_PASSWORD)
            expected[token] = value

    change = asyncio.create_task(store.change_password(PASSWORD, NEW_PASSWORD))
    await run_in_workers(tokens[::4], update_three_times, workers=8)
    await change

    opened = await passwords_opening(store, tokens, [PASSWORD, NEW_PASSWORD])
    under_old = [token for token, found in opened.items() if found == [PASSWORD]]
    under_new = [token for token, found in opened.items() if found == [NEW_PASSWORD]]
    assert len(under_old) + len(under_new) == len(tokens)
    found = await store.read_tokens(under_old, PASSWORD)
    found.update(await store.read_tokens(under_new, NEW_PASSWORD))
    assert found == expected

    await store.change_password(PASSWORD, NEW_PASSWORD)

    assert await store.read_tokens(tokens, NEW_PASSWORD) == expected


async def close_within(store, seconds: float) -> bool:
    """Close the store and return whether close() finished in time."""
    try:
        await asyncio.wait_for(store.close(), seconds)
    except TimeoutError:
        return False
    return True


async def vault_of(make_store, count: int):
    """Yield (store, {token: value}) with `count` rows under PASSWORD.

    If a cancelled operation leaked a pool connection, close() would wait
    for it forever. The bounded close here runs before make_store's
    teardown, so such a leak fails a test instead of hanging the run.
    """
    store = await make_store(key_reuse_writes=1000)
    values = [f"value {index}" for index in range(count)]
    tokens = await create_tokens(store, values, PASSWORD)
    yield store, dict(zip(tokens, values, strict=True))
    await close_within(store, 3)


@pytest.fixture
async def rotating_vault(make_store):
    """1,200 rows under PASSWORD, so change_password needs several keyset
    pages (the package reads 500 rows a page)."""
    async for vault in vault_of(make_store, 1200):
        yield vault


@pytest.fixture
async def small_vault(make_store):
    async for vault in vault_of(make_store, 50):
        yield vault


async def test_change_password_cancelled_after_page(rotating_vault):
    store, expected = rotating_vault
    calls: list[tuple[int, int]] = []

    def cancel_after_first_page(examined: int, changed: int) -> None:
        calls.append((examined, changed))
        task.cancel()

    task = asyncio.create_task(
        store.change_password(PASSWORD, NEW_PASSWORD, progress=cancel_after_first_page)
    )
    with pytest.raises(asyncio.CancelledError):
        await task

    opened = await passwords_opening(store, list(expected), [PASSWORD, NEW_PASSWORD])
    under_new = [token for token, found in opened.items() if found == [NEW_PASSWORD]]
    under_old = [token for token, found in opened.items() if found == [PASSWORD]]
    assert len(calls) == 1
    assert len(under_new) + len(under_old) == len(expected)
    assert len(under_new) == calls[0][1]
    assert under_old != []

    rest = await store.change_password(PASSWORD, NEW_PASSWORD)

    assert rest == len(under_old)
    assert await store.read_tokens(list(expected), NEW_PASSWORD) == expected
    assert await close_within(store, 3)


async def test_change_password_progress_raises(rotating_vault):
    store, expected = rotating_vault

    def fail_after_first_page(examined: int, changed: int) -> None:
        raise RuntimeError("progress reporter failed")

    with pytest.raises(RuntimeError):
        await store.change_password(
            PASSWORD, NEW_PASSWORD, progress=fail_after_first_page
        )

    opened = await passwords_opening(store, list(expected), [PASSWORD, NEW_PASSWORD])
    not_exactly_one = [token for token, found in opened.items() if len(found) != 1]
    assert not_exactly_one == []
    await store.change_password(PASSWORD, NEW_PASSWORD)
    assert await store.read_tokens(list(expected), NEW_PASSWORD) == expected


async def cancel_with_timeouts(store) -> None:
    """Start change_password several times and cancel each run part way.

    The timeouts cancel at different points: during a page read, during
    key derivation or inside a page's write transaction.
    """
    for timeout in (0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                store.change_password(PASSWORD, NEW_PASSWORD), timeout
            )


async def test_change_password_timeout_then_rerun(rotating_vault):
    store, expected = rotating_vault
    await cancel_with_timeouts(store)

    opened = await passwords_opening(store, list(expected), [PASSWORD, NEW_PASSWORD])
    not_exactly_one = [token for token, found in opened.items() if len(found) != 1]
    assert not_exactly_one == []

    await store.change_password(PASSWORD, NEW_PASSWORD)

    assert await store.read_tokens(list(expected), NEW_PASSWORD) == expected
    opened_old = await passwords_opening(store, list(expected), [PASSWORD])
    assert [token for token, found in opened_old.items() if found] == []


async def test_change_password_timeout_then_close(rotating_vault):
    store, _ = rotating_vault
    await cancel_with_timeouts(store)

    assert await close_within(store, 3)


async def test_change_password_cancel_while_blocked(small_vault, db_url, table_names):
    store, expected = small_vault
    # Another connection's open transaction has written every row, so the
    # first UPDATE of change_password waits for its locks (on SQLite, its
    # BEGIN IMMEDIATE waits for the write lock).
    async with databases.Database(db_url) as blocker:
        transaction = await blocker.transaction()
        await blocker.execute(
            f"UPDATE {table_names['table_name']} SET updated_at = updated_at"
        )
        task = asyncio.create_task(store.change_password(PASSWORD, NEW_PASSWORD))
        await asyncio.sleep(0.5)
        blocked = not task.done()
        task.cancel()
        # Release the locks before waiting for the task, because on SQLite
        # the cancelled BEGIN IMMEDIATE keeps running in aiosqlite's thread
        # and the task only ends once that statement does.
        await transaction.rollback()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    assert blocked
    opened = await passwords_opening(store, list(expected), [PASSWORD])
    assert [token for token, found in opened.items() if not found] == []

    rerun = await asyncio.wait_for(store.change_password(PASSWORD, NEW_PASSWORD), 30)

    assert rerun == len(expected)
    assert await store.read_tokens(list(expected), NEW_PASSWORD) == expected
    assert await close_within(store, 3)

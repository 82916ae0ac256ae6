"""Batch reads, upsert and expiry sweeps on every backend."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from _feature_helpers import AWKWARD_KEYS, create_tokens, hours_from_now
from conftest import OTHER_PASSWORD, PASSWORD

from vaultstore_async import (
    DecryptionError,
    PasswordPolicyError,
    RecordQuery,
    TokenNotFoundError,
    ValidationError,
)


def unknown_token() -> str:
    return f"tk_missing_{secrets.token_hex(8)}"


# read_tokens


async def test_read_tokens_returns_values(store):
    values = ["alpha", "beta", "gamma"]
    tokens = await create_tokens(store, values, PASSWORD)

    result = await store.read_tokens(tokens, PASSWORD)

    assert result == dict(zip(tokens, values, strict=True))


async def test_read_tokens_thousand_one_select(make_store):
    store = await make_store(key_reuse_writes=1000)
    values = [f"secret number {index}" for index in range(1000)]
    tokens = await create_tokens(store, values, PASSWORD)
    before = store.stats()

    result = await store.read_tokens(tokens, PASSWORD)

    after = store.stats()
    assert after["statements"] - before["statements"] == 1
    assert after["rows_read"] - before["rows_read"] == 1000
    assert result == dict(zip(tokens, values, strict=True))


async def test_read_tokens_duplicates(store):
    first, second = await create_tokens(store, ["one", "two"], PASSWORD)

    result = await store.read_tokens([first, second, first, first], PASSWORD)

    assert result == {first: "one", second: "two"}


async def test_read_tokens_empty_list(store):
    before = store.stats()["statements"]

    assert await store.read_tokens([], PASSWORD) == {}
    assert store.stats()["statements"] == before


async def test_read_tokens_empty_value_kept(store):
    empty, full = await create_tokens(store, ["", "full"], PASSWORD)

    result = await store.read_tokens([empty, full], PASSWORD)

    assert result == {empty: "", full: "full"}


async def test_read_tokens_expired_left_out(store):
    live = await store.create_token("live", PASSWORD, expires_at=hours_from_now(1))
    never = await store.create_token("never", PASSWORD)
    expired = await store.create_token("old", PASSWORD, expires_at=hours_from_now(-1))

    result = await store.read_tokens([live, expired, never], PASSWORD)

    assert result == {live: "live", never: "never"}


async def test_read_tokens_all_expired(store):
    expired = await store.create_token("old", PASSWORD, expires_at=hours_from_now(-1))

    assert await store.read_tokens([expired], PASSWORD) == {}


async def test_read_tokens_missing_token(store):
    present = await store.create_token("here", PASSWORD)
    missing = unknown_token()

    with pytest.raises(TokenNotFoundError) as caught:
        await store.read_tokens([present, missing], PASSWORD)

    assert caught.value.tokens == [missing]


async def test_read_tokens_duplicates_and_missing(store):
    first, second = await create_tokens(store, ["one", "two"], PASSWORD)
    missing_a, missing_b = unknown_token(), unknown_token()
    batch = [first, missing_a, first, missing_b, second, missing_a]

    with pytest.raises(TokenNotFoundError) as caught:
        await store.read_tokens(batch, PASSWORD)

    assert sorted(caught.value.tokens) == sorted([missing_a, missing_b])


async def test_read_tokens_soft_deleted_missing(store):
    live, hidden = await create_tokens(store, ["live", "hidden"], PASSWORD)
    await store.soft_delete_token(hidden)

    with pytest.raises(TokenNotFoundError) as caught:
        await store.read_tokens([live, hidden], PASSWORD)

    assert caught.value.tokens == [hidden]


async def test_read_tokens_wrong_password(store):
    tokens = await create_tokens(store, ["one", "two"], PASSWORD)

    with pytest.raises(DecryptionError):
        await store.read_tokens(tokens, OTHER_PASSWORD)


async def test_read_tokens_mixed_passwords(store):
    mine = await store.create_token("mine", PASSWORD)
    theirs = await store.create_token("theirs", OTHER_PASSWORD)

    with pytest.raises(DecryptionError):
        await store.read_tokens([mine, theirs], PASSWORD)


async def test_read_tokens_wrong_password_expired(store):
    expired = await store.create_token("old", PASSWORD, expires_at=hours_from_now(-1))

    with pytest.raises(DecryptionError):
        await store.read_tokens([expired], OTHER_PASSWORD)


async def test_read_tokens_past_parameter_limit(store):
    # 40,000 distinct tokens need more bound parameters than one statement
    # takes on PostgreSQL (32,767: the Bind message counts them in 16 bits)
    # or on SQLite 3.32 and later (32,766 by default).
    real = await create_tokens(store, ["first", "middle", "last"], PASSWORD)
    batch = [f"tk_absent_{index:05d}" for index in range(40_000)]
    batch[0], batch[20_000], batch[-1] = real
    expected_missing = sorted(set(batch) - set(real))

    with pytest.raises(TokenNotFoundError) as caught:
        await store.read_tokens(batch, PASSWORD)

    assert sorted(caught.value.tokens) == expected_missing


async def test_read_tokens_awkward_tokens(store):
    expected = {}
    for index, token in enumerate(AWKWARD_KEYS):
        await store.create_custom_token(token, f"value {index}", PASSWORD)
        expected[token] = f"value {index}"

    result = await store.read_tokens(list(expected), PASSWORD)

    assert result == expected


@pytest.mark.parametrize(
    "tokens",
    [None, "tk_abc", b"tk_abc", 12, [12], [None], [""], ["x" * 256], ["a\x00b"]],
    ids=[
        "none",
        "str",
        "bytes",
        "int",
        "int-item",
        "none-item",
        "empty-item",
        "long-item",
        "nul-item",
    ],
)
async def test_read_tokens_invalid_tokens(store, tokens):
    with pytest.raises(ValidationError):
        await store.read_tokens(tokens, PASSWORD)


async def test_read_tokens_invalid_password(store):
    token = await store.create_token("value", PASSWORD)

    with pytest.raises(ValidationError):
        await store.read_tokens([token], b"bytes password")


# resolve_tokens


async def test_resolve_tokens_maps_keys(store):
    db_token, api_token = await create_tokens(store, ["db-pass", "api-key"], PASSWORD)

    result = await store.resolve_tokens({"DB": db_token, "API": api_token}, PASSWORD)

    assert result == {"DB": "db-pass", "API": "api-key"}


async def test_resolve_tokens_shared_token(store):
    token = await store.create_token("shared", PASSWORD)

    result = await store.resolve_tokens({"A": token, "B": token}, PASSWORD)

    assert result == {"A": "shared", "B": "shared"}


async def test_resolve_tokens_expired_left_out(store):
    live = await store.create_token("live", PASSWORD)
    expired = await store.create_token("old", PASSWORD, expires_at=hours_from_now(-1))

    result = await store.resolve_tokens(
        {"LIVE": live, "OLD": expired, "ALSO_OLD": expired}, PASSWORD
    )

    assert result == {"LIVE": "live"}


async def test_resolve_tokens_empty_value(store):
    token = await store.create_token("", PASSWORD)

    assert await store.resolve_tokens({"EMPTY": token}, PASSWORD) == {"EMPTY": ""}


async def test_resolve_tokens_missing(store):
    live = await store.create_token("live", PASSWORD)
    missing = unknown_token()

    with pytest.raises(TokenNotFoundError) as caught:
        await store.resolve_tokens({"LIVE": live, "GONE": missing}, PASSWORD)

    assert caught.value.tokens == [missing]


async def test_resolve_tokens_soft_deleted(store):
    hidden = await store.create_token("hidden", PASSWORD)
    await store.soft_delete_token(hidden)

    with pytest.raises(TokenNotFoundError) as caught:
        await store.resolve_tokens({"HIDDEN": hidden}, PASSWORD)

    assert caught.value.tokens == [hidden]


async def test_resolve_tokens_wrong_password(store):
    token = await store.create_token("value", PASSWORD)

    with pytest.raises(DecryptionError):
        await store.resolve_tokens({"KEY": token}, OTHER_PASSWORD)


async def test_resolve_tokens_empty_mapping(store):
    assert await store.resolve_tokens({}, PASSWORD) == {}


@pytest.mark.parametrize(
    "mapping",
    [None, ["tk_abc"], "tk_abc", {"KEY": 12}, {"KEY": ""}, {"KEY": None}],
    ids=["none", "list", "str", "int-token", "empty-token", "none-token"],
)
async def test_resolve_tokens_invalid_mapping(store, mapping):
    with pytest.raises(ValidationError):
        await store.resolve_tokens(mapping, PASSWORD)


# upsert_token


@pytest.mark.parametrize("token", [None, ""], ids=["none", "empty"])
async def test_upsert_token_creates_new(store, token):
    created = await store.upsert_token(token, "fresh", PASSWORD)

    assert created.startswith("tk_")
    assert len(created) == 32
    assert await store.read_token(created, PASSWORD) == "fresh"


async def test_upsert_token_new_length(store):
    created = await store.upsert_token(None, "fresh", PASSWORD, length=20)

    assert len(created) == 20


async def test_upsert_token_new_expires_at(store):
    expires = hours_from_now(2)

    created = await store.upsert_token(None, "fresh", PASSWORD, expires_at=expires)

    record = await store.find_record_by_token(created)
    assert record is not None
    assert record.expires_at == expires


async def test_upsert_token_updates_existing(store):
    token = await store.create_token("before", PASSWORD)
    before = await store.find_record_by_token(token)

    returned = await store.upsert_token(token, "after", PASSWORD)

    after = await store.find_record_by_token(token)
    assert returned == token
    assert await store.read_token(token, PASSWORD) == "after"
    assert after is not None and before is not None
    assert after.id == before.id
    assert await store.count_records() == 1


async def test_upsert_token_existing_keeps_expiry(store):
    expires = hours_from_now(3)
    token = await store.create_token("before", PASSWORD, expires_at=expires)

    await store.upsert_token(token, "after", PASSWORD)

    record = await store.find_record_by_token(token)
    assert record is not None
    assert record.expires_at == expires


async def test_upsert_token_existing_wrong_password(store):
    token = await store.create_token("before", PASSWORD)

    with pytest.raises(DecryptionError):
        await store.upsert_token(token, "after", OTHER_PASSWORD)

    assert await store.read_token(token, PASSWORD) == "before"


async def test_upsert_token_existing_expired(store):
    token = await store.create_token("old", PASSWORD, expires_at=hours_from_now(-1))

    await store.upsert_token(token, "renewed", PASSWORD, expires_at=hours_from_now(1))

    assert await store.read_token(token, PASSWORD) == "renewed"


async def test_upsert_token_unknown_creates_custom(store):
    token = "customer-42/api key"

    returned = await store.upsert_token(token, "created", PASSWORD)

    assert returned == token
    assert await store.read_token(token, PASSWORD) == "created"


async def test_upsert_token_concurrent_new(store):
    values = [f"writer {index}" for index in range(10)]
    # Open the pool's connections first, so the upserts start together
    # instead of queueing for new connections.
    await asyncio.gather(*(store.token_exists("warm-up") for _ in values))

    results = await asyncio.gather(
        *(store.upsert_token("shared-custom", value, PASSWORD) for value in values),
        return_exceptions=True,
    )

    errors = [
        type(result).__name__ for result in results if isinstance(result, Exception)
    ]
    assert errors == []
    assert await store.count_records() == 1
    assert await store.read_token("shared-custom", PASSWORD) in values


@pytest.mark.parametrize(
    ("token", "value", "options"),
    [
        (12, "value", {}),
        ("x" * 256, "value", {}),
        ("custom", 12, {}),
        (None, 12, {}),
        ("custom", "value", {"length": 14}),
        (None, "value", {"length": 41}),
        ("custom", "value", {"expires_at": "tomorrow"}),
        (None, "value", {"expires_at": hours_from_now(1).replace(tzinfo=None)}),
    ],
    ids=[
        "int-token",
        "long-token",
        "int-value",
        "new-int-value",
        "short-length",
        "long-length",
        "str-expiry",
        "naive-expiry",
    ],
)
async def test_upsert_token_invalid_arguments(store, token, value, options):
    with pytest.raises(ValidationError):
        await store.upsert_token(token, value, PASSWORD, **options)


@pytest.mark.parametrize("token", [None, "custom"], ids=["new", "custom"])
async def test_upsert_token_weak_password(store, token):
    with pytest.raises(PasswordPolicyError):
        await store.upsert_token(token, "value", "short")

    assert await store.count_records() == 0


# Expiry sweeps


@pytest.fixture
async def expiry_mix(store):
    """Fill the store with rows in every expiry and soft-delete state and
    return how many of each were made."""
    past, future = hours_from_now(-1), hours_from_now(1)
    plan = {
        "live_expired": (5, past, False),
        "deleted_expired": (3, past, True),
        "live_future": (4, future, False),
        "deleted_future": (2, future, True),
        "live_never": (3, None, False),
        "deleted_never": (1, None, True),
    }
    for name, (count, expires, deleted) in plan.items():
        values = [f"{name} {index}" for index in range(count)]
        tokens = await create_tokens(store, values, PASSWORD, expires_at=expires)
        if deleted:
            for token in tokens:
                await store.soft_delete_token(token)
    return {name: count for name, (count, _, _) in plan.items()}


async def test_soft_delete_expired_count(store, expiry_mix):
    expected = await store.count_records(RecordQuery(expired=True))

    swept = await store.soft_delete_expired_tokens()

    assert expected == expiry_mix["live_expired"]
    assert swept == expected


async def test_soft_delete_expired_effect(store, expiry_mix):
    await store.soft_delete_expired_tokens()

    live_expired = await store.count_records(RecordQuery(expired=True))
    deleted = await store.count_records(RecordQuery(only_soft_deleted=True))
    live = await store.count_records()
    total = await store.count_records(RecordQuery(include_soft_deleted=True))

    assert live_expired == 0
    assert deleted == (
        expiry_mix["live_expired"]
        + expiry_mix["deleted_expired"]
        + expiry_mix["deleted_future"]
        + expiry_mix["deleted_never"]
    )
    assert live == expiry_mix["live_future"] + expiry_mix["live_never"]
    assert total == sum(expiry_mix.values())


async def test_soft_delete_expired_one_statement(store, expiry_mix):
    before = store.stats()["statements"]

    await store.soft_delete_expired_tokens()

    assert store.stats()["statements"] - before == 1


async def test_soft_delete_expired_twice(store, expiry_mix):
    await store.soft_delete_expired_tokens()

    assert await store.soft_delete_expired_tokens() == 0


async def test_delete_expired_count(store, expiry_mix):
    expected = await store.count_records(
        RecordQuery(expired=True, include_soft_deleted=True)
    )

    deleted = await store.delete_expired_tokens()

    assert expected == expiry_mix["live_expired"] + expiry_mix["deleted_expired"]
    assert deleted == expected


async def test_delete_expired_effect(store, expiry_mix):
    await store.delete_expired_tokens()

    expired = await store.count_records(
        RecordQuery(expired=True, include_soft_deleted=True)
    )
    remaining = await store.count_records(RecordQuery(include_soft_deleted=True))
    deleted_remaining = await store.count_records(RecordQuery(only_soft_deleted=True))

    assert expired == 0
    assert remaining == (
        expiry_mix["live_future"]
        + expiry_mix["deleted_future"]
        + expiry_mix["live_never"]
        + expiry_mix["deleted_never"]
    )
    assert (
        deleted_remaining == expiry_mix["deleted_future"] + expiry_mix["deleted_never"]
    )


async def test_delete_expired_after_soft_sweep(store, expiry_mix):
    soft = await store.soft_delete_expired_tokens()

    hard = await store.delete_expired_tokens()

    assert soft == expiry_mix["live_expired"]
    assert hard == expiry_mix["live_expired"] + expiry_mix["deleted_expired"]


async def test_delete_expired_one_statement(store, expiry_mix):
    before = store.stats()["statements"]

    await store.delete_expired_tokens()

    assert store.stats()["statements"] - before == 1


async def test_delete_expired_twice(store, expiry_mix):
    await store.delete_expired_tokens()

    assert await store.delete_expired_tokens() == 0


async def test_sweeps_empty_store(store):
    assert await store.soft_delete_expired_tokens() == 0
    assert await store.delete_expired_tokens() == 0


async def test_sweeps_keep_future_tokens(store):
    token = await store.create_token("kept", PASSWORD, expires_at=hours_from_now(1))

    await store.soft_delete_expired_tokens()
    await store.delete_expired_tokens()

    assert await store.read_token(token, PASSWORD) == "kept"

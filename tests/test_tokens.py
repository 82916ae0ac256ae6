"""Token operations on every backend: create, read, update, expiry, deletes."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from _helpers import count_rows, fetch_row, utc_time
from conftest import OTHER_PASSWORD, PASSWORD

import vaultstore_async._token_ops
from vaultstore_async import (
    MAX_VALUE_BYTES,
    BackendError,
    DecryptionError,
    TokenExistsError,
    TokenExpiredError,
    TokenNotFoundError,
    ValidationError,
)

TOKEN_ALPHABET = set(string.ascii_lowercase + string.digits)


def hours_from_now(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


# Generated tokens


async def test_create_token_default_length(store):
    token = await store.create_token("value", PASSWORD)

    assert len(token) == 32
    assert token.startswith("tk_")


@pytest.mark.parametrize("length", [15, 16, 39, 40])
async def test_create_token_custom_length(store, length):
    token = await store.create_token("value", PASSWORD, length=length)

    assert len(token) == length
    assert token.startswith("tk_")


async def test_create_token_alphabet(store):
    for _ in range(20):
        token = await store.create_token("value", PASSWORD)
        assert set(token[3:]) <= TOKEN_ALPHABET


async def test_create_token_unique(store):
    tokens = [await store.create_token("value", PASSWORD, length=15) for _ in range(50)]

    assert len(set(tokens)) == 50


@pytest.mark.parametrize("length", [0, 14, 41, 255])
async def test_create_token_length_out_of_range(store, length):
    with pytest.raises(ValidationError):
        await store.create_token("value", PASSWORD, length=length)


def generator_from(tokens: list[str], fallback):
    """Return a token generator that yields `tokens` first, then calls `fallback`."""
    queue = list(tokens)

    def generate(length: int) -> str:
        return queue.pop(0) if queue else fallback(length)

    return generate


async def test_create_token_retries_clash(store, monkeypatch):
    taken_token = "tk_" + "a" * 29
    await store.create_custom_token(taken_token, "first", PASSWORD)
    real = vaultstore_async._token_ops.generate_token
    monkeypatch.setattr(
        vaultstore_async._token_ops,
        "generate_token",
        generator_from([taken_token, taken_token], real),
    )
    before = store.stats()["statements"]

    token = await store.create_token("second", PASSWORD)
    statements = store.stats()["statements"] - before

    # Two inserts hit the unique index and the third one succeeds.
    assert statements == 3
    assert token != taken_token
    assert await store.read_token(token, PASSWORD) == "second"
    assert await store.read_token(taken_token, PASSWORD) == "first"


async def test_create_token_clash_soft_deleted(store, monkeypatch):
    taken_token = "tk_" + "b" * 29
    await store.create_custom_token(taken_token, "first", PASSWORD)
    await store.soft_delete_token(taken_token)
    real = vaultstore_async._token_ops.generate_token
    monkeypatch.setattr(
        vaultstore_async._token_ops,
        "generate_token",
        generator_from([taken_token], real),
    )

    token = await store.create_token("second", PASSWORD)

    assert token != taken_token
    assert await store.read_token(token, PASSWORD) == "second"


async def test_create_token_gives_up(store, db_url, table_names, monkeypatch):
    taken_token = "tk_" + "c" * 29
    await store.create_custom_token(taken_token, "first", PASSWORD)
    monkeypatch.setattr(
        vaultstore_async._token_ops, "generate_token", lambda length: taken_token
    )

    with pytest.raises(BackendError):
        await store.create_token("second", PASSWORD)

    assert await count_rows(db_url, table_names["table_name"]) == 1


async def test_create_token_round_trip(store):
    token = await store.create_token("sk_live_abc", PASSWORD)

    assert await store.read_token(token, PASSWORD) == "sk_live_abc"


async def test_create_token_one_statement(store):
    before = store.stats()["statements"]

    await store.create_token("value", PASSWORD)

    assert store.stats()["statements"] - before == 1


# Values


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "line one\nline two\r\n",
        "caf\u00e9 \u65e5\u672c \U0001f511",
        "quote ' and \" and \\ and %s and :name",
    ],
    ids=["empty", "space", "newlines", "unicode", "sql_characters"],
)
async def test_value_round_trip(store, value):
    token = await store.create_token(value, PASSWORD)

    assert await store.read_token(token, PASSWORD) == value


async def test_value_one_mebibyte(store):
    value = "x" * (1024 * 1024)
    token = await store.create_token(value, PASSWORD)

    assert await store.read_token(token, PASSWORD) == value


async def test_value_max_bytes(store):
    value = "ab" * (MAX_VALUE_BYTES // 2)
    token = await store.create_token(value, PASSWORD)

    assert await store.read_token(token, PASSWORD) == value


async def test_value_max_multibyte(store):
    # Two UTF-8 bytes a character: the limit counts bytes, not characters.
    value = "\u00e9" * (MAX_VALUE_BYTES // 2)
    token = await store.create_token(value, PASSWORD)

    assert await store.read_token(token, PASSWORD) == value


async def test_value_over_max_bytes(store, db_url, table_names):
    with pytest.raises(ValidationError):
        await store.create_token("x" * (MAX_VALUE_BYTES + 1), PASSWORD)

    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_value_over_max_multibyte(store, db_url, table_names):
    value = "\u00e9" * (MAX_VALUE_BYTES // 2) + "x"

    with pytest.raises(ValidationError):
        await store.create_token(value, PASSWORD)

    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_update_value_max_bytes(store):
    token = await store.create_token("small", PASSWORD)
    value = "y" * MAX_VALUE_BYTES

    await store.update_token(token, value, PASSWORD)

    assert await store.read_token(token, PASSWORD) == value


# Custom tokens


async def test_custom_token_round_trip(store):
    await store.create_custom_token("my-token", "value", PASSWORD)

    assert await store.read_token("my-token", PASSWORD) == "value"


async def test_custom_token_max_length(store):
    token = "t" * 255
    await store.create_custom_token(token, "value", PASSWORD)

    assert await store.read_token(token, PASSWORD) == "value"


async def test_custom_token_multibyte_max(store):
    # 255 characters of four UTF-8 bytes each.
    token = "\U0001f511" * 255
    await store.create_custom_token(token, "value", PASSWORD)

    assert await store.read_token(token, PASSWORD) == "value"


# Tokens made of whitespace, quoting and placeholder characters.
ODD_TOKENS = [
    " ",
    "  ",
    "\t",
    "\n",
    "%",
    "%s",
    "%%",
    ":name",
    "?",
    "a'b",
    'a"b',
    "\\",
    "tk_",
    "0",
    "\u00e9",
    "\U0001f511",
]


async def test_custom_token_odd_text(store):
    failures: dict[str, str] = {}
    for index, token in enumerate(ODD_TOKENS):
        value = f"value {index}"
        await store.create_custom_token(token, value, PASSWORD)
        if await store.read_token(token, PASSWORD) != value:
            failures[repr(token)] = "read returned another value"
        elif await store.token_exists(token) is not True:
            failures[repr(token)] = "token_exists returned False"

    assert failures == {}


async def test_odd_tokens_delete(store, db_url, table_names):
    for token in ODD_TOKENS:
        await store.create_custom_token(token, "value", PASSWORD)

    deleted = [await store.delete_token(token) for token in ODD_TOKENS]

    assert deleted == [True] * len(ODD_TOKENS)
    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_custom_token_returns_none(store):
    assert await store.create_custom_token("t1", "value", PASSWORD) is None


async def test_custom_token_exists(store):
    await store.create_custom_token("dup", "first", PASSWORD)

    with pytest.raises(TokenExistsError):
        await store.create_custom_token("dup", "second", PASSWORD)

    assert await store.read_token("dup", PASSWORD) == "first"


async def test_custom_token_exists_soft_deleted(store):
    await store.create_custom_token("dup", "first", PASSWORD)
    await store.soft_delete_token("dup")

    with pytest.raises(TokenExistsError):
        await store.create_custom_token("dup", "second", PASSWORD)

    await store.restore_token("dup")
    assert await store.read_token("dup", PASSWORD) == "first"


async def test_custom_token_exists_expired(store):
    await store.create_custom_token(
        "dup", "first", PASSWORD, expires_at=hours_from_now(-1)
    )

    with pytest.raises(TokenExistsError):
        await store.create_custom_token("dup", "second", PASSWORD)


async def test_custom_token_reuse_after_delete(store):
    await store.create_custom_token("again", "first", PASSWORD)
    await store.delete_token("again")

    await store.create_custom_token("again", "second", PASSWORD)

    assert await store.read_token("again", PASSWORD) == "second"


# Pairs of tokens that every backend must keep apart.
DISTINCT_TOKENS = {
    "upper": ("abc", "ABC"),
    "capital": ("abc", "Abc"),
    "trailing_space": ("abc", "abc "),
    "two_trailing_spaces": ("abc", "abc  "),
    "leading_space": ("abc", " abc"),
    "trailing_tab": ("abc", "abc\t"),
    "nfc_nfd": ("caf\u00e9", "cafe\u0301"),
    "sharp_s": ("stra\u00dfe", "strasse"),
    "accent": ("a", "\u00e0"),
}


async def test_custom_token_exact_match(store):
    mixed_up: dict[str, str] = {}
    for case, (first, second) in DISTINCT_TOKENS.items():
        first_value, second_value = f"{case} first", f"{case} second"
        # Pairs share tokens, so each pair first deletes both of its tokens.
        await store.delete_token(first)
        await store.delete_token(second)
        await store.create_custom_token(first, first_value, PASSWORD)
        try:
            await store.create_custom_token(second, second_value, PASSWORD)
        except TokenExistsError:
            mixed_up[case] = "second token clashed with the first"
            continue
        if await store.read_token(first, PASSWORD) != first_value:
            mixed_up[case] = "first token read the wrong value"
        elif await store.read_token(second, PASSWORD) != second_value:
            mixed_up[case] = "second token read the wrong value"

    assert mixed_up == {}


async def test_read_trailing_space_not_found(store):
    await store.create_custom_token("abc", "value", PASSWORD)

    with pytest.raises(TokenNotFoundError):
        await store.read_token("abc ", PASSWORD)


async def test_read_other_case_not_found(store):
    await store.create_custom_token("abc", "value", PASSWORD)

    with pytest.raises(TokenNotFoundError):
        await store.read_token("ABC", PASSWORD)


async def test_exists_trailing_space_false(store):
    await store.create_custom_token("abc", "value", PASSWORD)

    assert await store.token_exists("abc ") is False


async def test_delete_trailing_space_keeps_row(store):
    await store.create_custom_token("abc", "value", PASSWORD)

    assert await store.delete_token("abc ") is False
    assert await store.token_exists("abc") is True


# Reads


async def test_read_missing_token(store):
    with pytest.raises(TokenNotFoundError):
        await store.read_token("tk_missing", PASSWORD)


async def test_read_wrong_password(store):
    token = await store.create_token("value", PASSWORD)

    with pytest.raises(DecryptionError):
        await store.read_token(token, OTHER_PASSWORD)


async def test_read_empty_password_fails(store):
    token = await store.create_token("value", PASSWORD)

    with pytest.raises(DecryptionError):
        await store.read_token(token, "")


async def test_read_one_statement(store):
    token = await store.create_token("value", PASSWORD)
    before = store.stats()["statements"]

    await store.read_token(token, PASSWORD)

    assert store.stats()["statements"] - before == 1


async def test_read_from_other_store(store, make_store):
    token = await store.create_token("value", PASSWORD)
    other = await make_store()

    assert await other.read_token(token, PASSWORD) == "value"


# Expiry


async def test_expired_token_raises(store):
    token = await store.create_token("value", PASSWORD, expires_at=hours_from_now(-1))

    with pytest.raises(TokenExpiredError):
        await store.read_token(token, PASSWORD)


async def test_expired_wrong_password(store):
    token = await store.create_token("value", PASSWORD, expires_at=hours_from_now(-1))

    with pytest.raises(DecryptionError):
        await store.read_token(token, OTHER_PASSWORD)


async def test_future_expiry_readable(store):
    token = await store.create_token("value", PASSWORD, expires_at=hours_from_now(1))

    assert await store.read_token(token, PASSWORD) == "value"


async def test_expiry_other_timezone(store):
    # Thirty minutes ago, written in UTC+05:00. A store that dropped the
    # offset would see a time 4.5 hours in the future and let the read pass.
    east = timezone(timedelta(hours=5))
    past = (datetime.now(UTC) - timedelta(minutes=30)).astimezone(east)
    token = await store.create_token("value", PASSWORD, expires_at=past)

    with pytest.raises(TokenExpiredError):
        await store.read_token(token, PASSWORD)


async def test_expires_at_stored_utc(store, db_url, table_names):
    plus_five = timezone(timedelta(hours=5))
    expires = datetime(2031, 1, 2, 3, 4, 5, 678901, tzinfo=plus_five)
    token = await store.create_token("value", PASSWORD, expires_at=expires)

    row = await fetch_row(db_url, table_names["table_name"], token)

    assert utc_time(row["expires_at"]) == datetime(
        2031, 1, 1, 22, 4, 5, 678901, tzinfo=UTC
    )


async def test_created_at_microseconds(store, db_url, table_names):
    before = datetime.now(UTC)
    token = await store.create_token("value", PASSWORD)
    after = datetime.now(UTC)

    row = await fetch_row(db_url, table_names["table_name"], token)
    created = utc_time(row["created_at"])
    updated = utc_time(row["updated_at"])

    # A column that drops the fraction would fall before `before`.
    assert before <= created <= after
    assert before <= updated <= after


async def test_new_row_timestamps(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD)

    row = await fetch_row(db_url, table_names["table_name"], token)

    assert row["expires_at"] is None
    assert row["soft_deleted_at"] is None
    assert row["created_at"] == row["updated_at"]


async def test_expires_at_latest(store):
    latest = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    token = await store.create_token("value", PASSWORD, expires_at=latest)

    assert await store.read_token(token, PASSWORD) == "value"


async def test_exists_expired_token(store):
    token = await store.create_token("value", PASSWORD, expires_at=hours_from_now(-1))

    assert await store.token_exists(token) is True


# Renewal


async def test_renew_revives_expired(store):
    token = await store.create_token("value", PASSWORD, expires_at=hours_from_now(-1))

    await store.renew_token(token, hours_from_now(1))

    assert await store.read_token(token, PASSWORD) == "value"


async def test_renew_to_past(store):
    token = await store.create_token("value", PASSWORD)

    await store.renew_token(token, hours_from_now(-1))

    with pytest.raises(TokenExpiredError):
        await store.read_token(token, PASSWORD)


async def test_renew_none_never_expires(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD, expires_at=hours_from_now(-1))

    await store.renew_token(token, None)

    assert await store.read_token(token, PASSWORD) == "value"
    row = await fetch_row(db_url, table_names["table_name"], token)
    assert row["expires_at"] is None


async def test_renew_stores_time(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD)
    expires = datetime(2040, 6, 1, 12, 30, 0, 123456, tzinfo=UTC)

    await store.renew_token(token, expires)

    row = await fetch_row(db_url, table_names["table_name"], token)
    assert utc_time(row["expires_at"]) == expires


async def test_renew_same_time_twice(store):
    token = await store.create_token("value", PASSWORD)
    expires = hours_from_now(1)

    await store.renew_token(token, expires)
    await store.renew_token(token, expires)

    assert await store.read_token(token, PASSWORD) == "value"


async def test_renew_missing_token(store):
    with pytest.raises(TokenNotFoundError):
        await store.renew_token("tk_missing", hours_from_now(1))


async def test_renew_soft_deleted(store):
    token = await store.create_token("value", PASSWORD)
    await store.soft_delete_token(token)

    with pytest.raises(TokenNotFoundError):
        await store.renew_token(token, hours_from_now(1))


# Updates


async def test_update_replaces_value(store):
    token = await store.create_token("old", PASSWORD)

    await store.update_token(token, "new", PASSWORD)

    assert await store.read_token(token, PASSWORD) == "new"


async def test_update_wrong_password(store):
    token = await store.create_token("old", PASSWORD)

    with pytest.raises(DecryptionError):
        await store.update_token(token, "new", OTHER_PASSWORD)

    assert await store.read_token(token, PASSWORD) == "old"


async def test_update_new_password(store):
    token = await store.create_token("old", PASSWORD)

    await store.update_token(token, "new", PASSWORD, new_password=OTHER_PASSWORD)

    assert await store.read_token(token, OTHER_PASSWORD) == "new"


async def test_update_old_password_rejected(store):
    token = await store.create_token("old", PASSWORD)

    await store.update_token(token, "new", PASSWORD, new_password=OTHER_PASSWORD)

    with pytest.raises(DecryptionError):
        await store.read_token(token, PASSWORD)


async def test_update_wrong_password_with_new(store):
    token = await store.create_token("old", PASSWORD)

    with pytest.raises(DecryptionError):
        await store.update_token(token, "new", OTHER_PASSWORD, new_password=PASSWORD)

    assert await store.read_token(token, PASSWORD) == "old"


async def test_update_keeps_expiry(store, db_url, table_names):
    expires = datetime(2035, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    token = await store.create_token("old", PASSWORD, expires_at=expires)

    await store.update_token(token, "new", PASSWORD, new_password=OTHER_PASSWORD)

    row = await fetch_row(db_url, table_names["table_name"], token)
    assert utc_time(row["expires_at"]) == expires


async def test_update_keeps_created_at(store, db_url, table_names):
    token = await store.create_token("old", PASSWORD)
    before = await fetch_row(db_url, table_names["table_name"], token)

    await store.update_token(token, "new", PASSWORD)

    after = await fetch_row(db_url, table_names["table_name"], token)
    assert after["created_at"] == before["created_at"]
    assert utc_time(after["updated_at"]) > utc_time(before["updated_at"])


async def test_update_missing_token(store):
    with pytest.raises(TokenNotFoundError):
        await store.update_token("tk_missing", "new", PASSWORD)


async def test_update_soft_deleted(store):
    token = await store.create_token("old", PASSWORD)
    await store.soft_delete_token(token)

    with pytest.raises(TokenNotFoundError):
        await store.update_token(token, "new", PASSWORD)


async def test_update_returns_none(store):
    token = await store.create_token("old", PASSWORD)

    assert await store.update_token(token, "new", PASSWORD) is None


# Existence


async def test_exists_live_token(store):
    token = await store.create_token("value", PASSWORD)

    assert await store.token_exists(token) is True


async def test_exists_missing_token(store):
    assert await store.token_exists("tk_missing") is False


async def test_exists_soft_deleted(store):
    token = await store.create_token("value", PASSWORD)
    await store.soft_delete_token(token)

    assert await store.token_exists(token) is False


async def test_exists_after_delete(store):
    token = await store.create_token("value", PASSWORD)
    await store.delete_token(token)

    assert await store.token_exists(token) is False


# Hard delete


async def test_delete_live_token(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD)

    assert await store.delete_token(token) is True
    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_delete_missing_token(store):
    assert await store.delete_token("tk_missing") is False


async def test_delete_twice(store):
    token = await store.create_token("value", PASSWORD)
    await store.delete_token(token)

    assert await store.delete_token(token) is False


async def test_delete_soft_deleted(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD)
    await store.soft_delete_token(token)

    assert await store.delete_token(token) is True
    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_delete_then_read(store):
    token = await store.create_token("value", PASSWORD)
    await store.delete_token(token)

    with pytest.raises(TokenNotFoundError):
        await store.read_token(token, PASSWORD)


async def test_delete_only_one_row(store):
    kept_token = await store.create_token("kept", PASSWORD)
    deleted_token = await store.create_token("gone", PASSWORD)

    await store.delete_token(deleted_token)

    assert await store.read_token(kept_token, PASSWORD) == "kept"


# Soft delete and restore


async def test_soft_delete_hides_token(store):
    token = await store.create_token("value", PASSWORD)

    await store.soft_delete_token(token)

    with pytest.raises(TokenNotFoundError):
        await store.read_token(token, PASSWORD)


async def test_soft_delete_keeps_row(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD)

    await store.soft_delete_token(token)

    row = await fetch_row(db_url, table_names["table_name"], token)
    assert row["soft_deleted_at"] is not None


async def test_soft_delete_twice(store):
    token = await store.create_token("value", PASSWORD)
    await store.soft_delete_token(token)

    with pytest.raises(TokenNotFoundError):
        await store.soft_delete_token(token)


async def test_soft_delete_missing(store):
    with pytest.raises(TokenNotFoundError):
        await store.soft_delete_token("tk_missing")


async def test_soft_delete_returns_none(store):
    token = await store.create_token("value", PASSWORD)

    assert await store.soft_delete_token(token) is None


async def test_restore_makes_readable(store):
    token = await store.create_token("value", PASSWORD)
    await store.soft_delete_token(token)

    await store.restore_token(token)

    assert await store.read_token(token, PASSWORD) == "value"
    assert await store.token_exists(token) is True


async def test_restore_clears_column(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD)
    await store.soft_delete_token(token)

    await store.restore_token(token)

    row = await fetch_row(db_url, table_names["table_name"], token)
    assert row["soft_deleted_at"] is None


async def test_restore_live_token(store):
    token = await store.create_token("value", PASSWORD)

    with pytest.raises(TokenNotFoundError):
        await store.restore_token(token)


async def test_restore_missing_token(store):
    with pytest.raises(TokenNotFoundError):
        await store.restore_token("tk_missing")


async def test_restore_twice(store):
    token = await store.create_token("value", PASSWORD)
    await store.soft_delete_token(token)
    await store.restore_token(token)

    with pytest.raises(TokenNotFoundError):
        await store.restore_token(token)


async def test_restore_keeps_expiry(store):
    token = await store.create_token("value", PASSWORD, expires_at=hours_from_now(-1))
    await store.soft_delete_token(token)

    await store.restore_token(token)

    with pytest.raises(TokenExpiredError):
        await store.read_token(token, PASSWORD)

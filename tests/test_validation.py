"""Argument checks and the password policy: bad input raises ValidationError
before anything reaches the database."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import databases
import pytest
from _helpers import count_rows, drop_named_tables, fetch_row, quote
from conftest import FAST_KDF, OTHER_PASSWORD, PASSWORD

from vaultstore_async import (
    MAX_VALUE_BYTES,
    AsyncStore,
    PasswordPolicy,
    PasswordPolicyError,
    TokenExistsError,
    ValidationError,
)

EXISTING = "tk_existing_token"
LONE_SURROGATE = "abc\ud800def"
NAIVE = datetime(2030, 1, 1, 12, 0, 0)
WEST = timezone(timedelta(hours=-5))

BAD_TEXT_TYPES: list[Any] = [None, 5, 1.5, b"bytes", bytearray(b"x"), ["x"], True]
BAD_TOKENS: list[Any] = [
    *BAD_TEXT_TYPES,
    "",
    "t" * 256,
    "\U0001f511" * 256,
    "a\x00b",
    "\x00",
    LONE_SURROGATE,
]
BAD_VALUES: list[Any] = [*BAD_TEXT_TYPES, LONE_SURROGATE, "x" * (MAX_VALUE_BYTES + 1)]
BAD_READ_PASSWORDS: list[Any] = [*BAD_TEXT_TYPES, LONE_SURROGATE]
BAD_WRITE_PASSWORDS: list[Any] = [*BAD_READ_PASSWORDS, "", "short password"]
BAD_LENGTHS: list[Any] = ["32", 32.0, None, True, b"32", 14, 41, -32]
BAD_TIMES: list[Any] = [
    NAIVE,
    datetime.now(),
    "2030-01-01T00:00:00+00:00",
    1893456000,
    date(2030, 1, 1),
    False,
    datetime(999, 12, 31, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    # Later than 9999-12-31 once converted to UTC.
    datetime(9999, 12, 31, 23, 0, 0, tzinfo=WEST),
]


# Each case maps "method.argument" to the bad values for that argument and
# a function that builds (method name, args, kwargs) around one bad value.
BAD_CALLS: dict[str, tuple[list[Any], Any]] = {
    "create_token.value": (BAD_VALUES, lambda v: ("create_token", (v, PASSWORD), {})),
    "create_token.password": (
        BAD_WRITE_PASSWORDS,
        lambda v: ("create_token", ("value", v), {}),
    ),
    "create_token.length": (
        BAD_LENGTHS,
        lambda v: ("create_token", ("value", PASSWORD), {"length": v}),
    ),
    "create_token.expires_at": (
        BAD_TIMES,
        lambda v: ("create_token", ("value", PASSWORD), {"expires_at": v}),
    ),
    "create_custom_token.token": (
        BAD_TOKENS,
        lambda v: ("create_custom_token", (v, "value", PASSWORD), {}),
    ),
    "create_custom_token.value": (
        BAD_VALUES,
        lambda v: ("create_custom_token", ("tk_new", v, PASSWORD), {}),
    ),
    "create_custom_token.password": (
        BAD_WRITE_PASSWORDS,
        lambda v: ("create_custom_token", ("tk_new", "value", v), {}),
    ),
    "create_custom_token.expires_at": (
        BAD_TIMES,
        lambda v: (
            "create_custom_token",
            ("tk_new", "value", PASSWORD),
            {"expires_at": v},
        ),
    ),
    "read_token.token": (BAD_TOKENS, lambda v: ("read_token", (v, PASSWORD), {})),
    "read_token.password": (
        BAD_READ_PASSWORDS,
        lambda v: ("read_token", (EXISTING, v), {}),
    ),
    "update_token.token": (
        BAD_TOKENS,
        lambda v: ("update_token", (v, "new", PASSWORD), {}),
    ),
    "update_token.value": (
        BAD_VALUES,
        lambda v: ("update_token", (EXISTING, v, PASSWORD), {}),
    ),
    "update_token.password": (
        BAD_WRITE_PASSWORDS,
        lambda v: ("update_token", (EXISTING, "new", v), {}),
    ),
    "update_token.password_with_new": (
        BAD_READ_PASSWORDS,
        lambda v: (
            "update_token",
            (EXISTING, "new", v),
            {"new_password": OTHER_PASSWORD},
        ),
    ),
    "update_token.new_password": (
        [p for p in BAD_WRITE_PASSWORDS if p is not None],
        lambda v: ("update_token", (EXISTING, "new", PASSWORD), {"new_password": v}),
    ),
    "token_exists.token": (BAD_TOKENS, lambda v: ("token_exists", (v,), {})),
    "renew_token.token": (
        BAD_TOKENS,
        lambda v: ("renew_token", (v, datetime.now(UTC)), {}),
    ),
    "renew_token.expires_at": (
        BAD_TIMES,
        lambda v: ("renew_token", (EXISTING, v), {}),
    ),
    "delete_token.token": (BAD_TOKENS, lambda v: ("delete_token", (v,), {})),
    "soft_delete_token.token": (
        BAD_TOKENS,
        lambda v: ("soft_delete_token", (v,), {}),
    ),
    "restore_token.token": (BAD_TOKENS, lambda v: ("restore_token", (v,), {})),
}


async def all_rows(url: str, table: str) -> list[dict[str, Any]]:
    async with databases.Database(url) as db:
        rows = await db.fetch_all(f"SELECT * FROM {table} ORDER BY id")
    return [dict(row._mapping) for row in rows]


# Method arguments


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
async def test_bad_argument_rejected(store, db_url, table_names, case):
    await store.create_custom_token(EXISTING, "existing value", PASSWORD)
    table = table_names["table_name"]
    before = await all_rows(db_url, table)
    bad_values, build = BAD_CALLS[case]

    outcomes: dict[str, str] = {}
    for bad in bad_values:
        method, args, kwargs = build(bad)
        label = repr(bad)[:40]
        try:
            await getattr(store, method)(*args, **kwargs)
        except ValidationError:
            continue
        except Exception as exc:
            outcomes[label] = type(exc).__name__
        else:
            outcomes[label] = "no error"

    assert outcomes == {}
    assert await all_rows(db_url, table) == before


async def test_bad_argument_existing_intact(store):
    await store.create_custom_token(EXISTING, "existing value", PASSWORD)

    with pytest.raises(ValidationError):
        await store.update_token(EXISTING, "new", PASSWORD, new_password="short")

    assert await store.read_token(EXISTING, PASSWORD) == "existing value"


async def test_empty_token_rejected(store, db_url, table_names):
    with pytest.raises(ValidationError):
        await store.create_custom_token("", "value", PASSWORD)

    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_long_token_rejected(store, db_url, table_names):
    with pytest.raises(ValidationError):
        await store.create_custom_token("t" * 256, "value", PASSWORD)

    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_nul_token_rejected(store, db_url, table_names):
    with pytest.raises(ValidationError):
        await store.create_custom_token("to\x00ken", "value", PASSWORD)

    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_naive_expiry_rejected(store, db_url, table_names):
    with pytest.raises(ValidationError):
        await store.create_token("value", PASSWORD, expires_at=NAIVE)

    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_naive_renew_keeps_expiry(store, db_url, table_names):
    await store.create_custom_token(EXISTING, "value", PASSWORD)

    with pytest.raises(ValidationError):
        await store.renew_token(EXISTING, NAIVE)

    row = await fetch_row(db_url, table_names["table_name"], EXISTING)
    assert row["expires_at"] is None


async def test_string_length_rejected(store, db_url, table_names):
    with pytest.raises(ValidationError):
        await store.create_token("value", PASSWORD, length="32")

    assert await count_rows(db_url, table_names["table_name"]) == 0


def test_validation_error_is_value_error():
    assert issubclass(ValidationError, ValueError)


# Password policy


def test_policy_defaults():
    policy = PasswordPolicy()

    assert policy.min_length == 16
    assert policy.allow_empty is False
    assert policy.require_lowercase is False
    assert policy.require_uppercase is False
    assert policy.require_digits is False
    assert policy.require_symbols is False


def test_policy_is_frozen():
    policy = PasswordPolicy()

    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.min_length = 1


def test_policy_error_hierarchy():
    assert issubclass(PasswordPolicyError, ValidationError)


@pytest.mark.parametrize(
    "options",
    [
        {"min_length": -1},
        {"min_length": "16"},
        {"min_length": 16.0},
        {"min_length": None},
        {"allow_empty": "yes"},
        {"allow_empty": 1},
        {"require_lowercase": 1},
        {"require_uppercase": None},
        {"require_digits": "true"},
        {"require_symbols": 0},
    ],
)
def test_policy_rejects_options(options):
    with pytest.raises(ValidationError):
        PasswordPolicy(**options)


async def test_policy_min_length_boundary(store):
    token = await store.create_token("value", "p" * 16)

    assert await store.read_token(token, "p" * 16) == "value"


async def test_policy_short_password(store, db_url, table_names):
    with pytest.raises(PasswordPolicyError) as error:
        await store.create_token("value", "p" * 15)

    assert "at least 16" in str(error.value)
    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_policy_empty_password(store, db_url, table_names):
    with pytest.raises(PasswordPolicyError) as error:
        await store.create_token("value", "")

    assert "empty" in str(error.value)
    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_policy_empty_min_zero(make_store):
    store = await make_store(password_policy=PasswordPolicy(min_length=0))

    with pytest.raises(PasswordPolicyError):
        await store.create_token("value", "")


async def test_policy_allow_empty(make_store):
    store = await make_store(password_policy=PasswordPolicy(allow_empty=True))
    token = await store.create_token("value", "")

    assert await store.read_token(token, "") == "value"


async def test_policy_counts_characters(make_store):
    # Fifteen 4-byte characters are 60 bytes but only 15 characters.
    store = await make_store()

    with pytest.raises(PasswordPolicyError):
        await store.create_token("value", "\U0001f511" * 15)

    token = await store.create_token("value", "\U0001f511" * 16)
    assert await store.read_token(token, "\U0001f511" * 16) == "value"


@pytest.mark.parametrize(
    ("rule", "failing", "passing", "word"),
    [
        ("require_lowercase", "PASSWORD-1234-ABCD", "PASSWORD-1234-aBCD", "lowercase"),
        ("require_uppercase", "password-1234-abcd", "password-1234-Abcd", "uppercase"),
        ("require_digits", "password-abcd-efgh", "password-abcd-efg7", "digit"),
        ("require_symbols", "password1234abcdefgh", "password1234abcdefg!", "symbol"),
    ],
)
async def test_policy_rule(make_store, rule, failing, passing, word):
    store = await make_store(password_policy=PasswordPolicy(**{rule: True}))

    with pytest.raises(PasswordPolicyError) as error:
        await store.create_token("value", failing)

    assert word in str(error.value)
    token = await store.create_token("value", passing)
    assert await store.read_token(token, passing) == "value"


async def test_policy_custom_token(store, db_url, table_names):
    with pytest.raises(PasswordPolicyError):
        await store.create_custom_token("tk_custom", "value", "short")

    assert await count_rows(db_url, table_names["table_name"]) == 0


async def test_policy_update_password(make_store):
    lenient = await make_store(password_policy=PasswordPolicy(min_length=1))
    token = await lenient.create_token("old", "short")
    strict = await make_store(automigrate=False)

    with pytest.raises(PasswordPolicyError):
        await strict.update_token(token, "new", "short")

    assert await strict.read_token(token, "short") == "old"


async def test_policy_update_new_password(store):
    token = await store.create_token("old", PASSWORD)

    with pytest.raises(PasswordPolicyError) as error:
        await store.update_token(token, "new", PASSWORD, new_password="short")

    assert "new_password" in str(error.value)
    assert await store.read_token(token, PASSWORD) == "old"


async def test_policy_skips_old_password(make_store):
    lenient = await make_store(password_policy=PasswordPolicy(min_length=1))
    token = await lenient.create_token("old", "short")
    strict = await make_store(automigrate=False)

    await strict.update_token(token, "new", "short", new_password=PASSWORD)

    assert await strict.read_token(token, PASSWORD) == "new"


async def test_policy_not_on_read(make_store):
    lenient = await make_store(password_policy=PasswordPolicy(min_length=1))
    token = await lenient.create_token("value", "short")
    strict = await make_store(
        automigrate=False,
        password_policy=PasswordPolicy(
            min_length=32,
            require_lowercase=True,
            require_uppercase=True,
            require_digits=True,
            require_symbols=True,
        ),
    )

    assert await strict.read_token(token, "short") == "value"


async def test_policy_checked_before_insert(store, db_url, table_names):
    await store.create_custom_token("tk_taken", "value", PASSWORD)

    # The policy check runs before the insert, so the clash is never reached.
    with pytest.raises(PasswordPolicyError):
        await store.create_custom_token("tk_taken", "value", "short")

    with pytest.raises(TokenExistsError):
        await store.create_custom_token("tk_taken", "value", PASSWORD)


# Store options


VALID_NAMES = ["a", "_", "_vault", "Vault_1", "v" * 64, "x9_Y"]
INVALID_NAMES: list[Any] = [
    "",
    "1vault",
    "9",
    "vault-name",
    "vault name",
    "vault;drop",
    "vault.table",
    'va"ult',
    "va`ult",
    "va'ult",
    "vault\n",
    "\nvault",
    "v\u00e4ult",
    "\uff56ault",
    "v" * 65,
    None,
    5,
    b"vault",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_table_name_accepted(tmp_path, name):
    store = AsyncStore(
        f"sqlite:///{tmp_path / 'vault.db'}", table_name=name, kdf=FAST_KDF
    )

    assert store.table_name == name


@pytest.mark.parametrize("name", INVALID_NAMES, ids=repr)
def test_table_name_rejected(tmp_path, name):
    with pytest.raises(ValidationError):
        AsyncStore(f"sqlite:///{tmp_path / 'vault.db'}", table_name=name, kdf=FAST_KDF)


@pytest.mark.parametrize("name", INVALID_NAMES, ids=repr)
def test_meta_table_name_rejected(tmp_path, name):
    with pytest.raises(ValidationError):
        AsyncStore(
            f"sqlite:///{tmp_path / 'vault.db'}", meta_table_name=name, kdf=FAST_KDF
        )


def test_same_table_names_rejected(tmp_path):
    with pytest.raises(ValidationError):
        AsyncStore(
            f"sqlite:///{tmp_path / 'vault.db'}",
            table_name="same",
            meta_table_name="same",
            kdf=FAST_KDF,
        )


@pytest.mark.parametrize("style", ["mixed_case", "longest"])
async def test_table_name_round_trip(db_url, style):
    suffix = secrets.token_hex(4)
    if style == "mixed_case":
        vault, meta = f"Vault_{suffix}", f"Meta_{suffix}"
    else:
        vault = f"v_{suffix}_".ljust(64, "v")
        meta = f"m_{suffix}_".ljust(64, "m")
    try:
        async with AsyncStore(
            db_url, table_name=vault, meta_table_name=meta, kdf=FAST_KDF
        ) as store:
            token = await store.create_token("value", PASSWORD)
            value = await store.read_token(token, PASSWORD)
        async with databases.Database(db_url) as db:
            rows = await db.fetch_val(f"SELECT COUNT(*) FROM {quote(db_url, vault)}")
    finally:
        await drop_named_tables(db_url, vault, meta)

    assert value == "value"
    assert rows == 1


async def test_long_names_stay_distinct(backend, db_url):
    # Two valid names that differ only in their 64th character must not
    # end up sharing one table.
    if backend == "postgresql":
        pytest.skip("PostgreSQL cuts identifiers to 63 characters (documented)")
    suffix = secrets.token_hex(4)
    base = f"v_{suffix}_".ljust(63, "v")
    names = [(base + "a", f"ma_{suffix}"), (base + "b", f"mb_{suffix}")]
    try:
        async with (
            AsyncStore(
                db_url,
                table_name=names[0][0],
                meta_table_name=names[0][1],
                kdf=FAST_KDF,
            ) as first,
            AsyncStore(
                db_url,
                table_name=names[1][0],
                meta_table_name=names[1][1],
                kdf=FAST_KDF,
            ) as second,
        ):
            await first.create_custom_token("tk_shared", "first", PASSWORD)
            await second.create_custom_token("tk_shared", "second", PASSWORD)
            value = await first.read_token("tk_shared", PASSWORD)
    finally:
        for vault, meta in names:
            await drop_named_tables(db_url, vault, meta)

    assert value == "first"


@pytest.mark.parametrize(
    "options",
    [
        {"automigrate": "yes"},
        {"automigrate": 1},
        {"password_policy": "strict"},
        {"password_policy": {"min_length": 8}},
        {"key_cache_size": -1},
        {"key_cache_size": "10"},
        {"key_cache_ttl": 0},
        {"key_reuse_writes": -1},
        {"kdf_executor": "pool"},
        {"database_options": ["timeout"]},
    ],
    ids=repr,
)
def test_store_option_rejected(tmp_path, options):
    with pytest.raises(ValidationError):
        AsyncStore(f"sqlite:///{tmp_path / 'vault.db'}", kdf=FAST_KDF, **options)


@pytest.mark.parametrize(
    "database",
    [
        None,
        5,
        b"sqlite:///vault.db",
        "",
        "not a url",
        "vault.db",
        "redis://127.0.0.1/0",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file.db?mode=memory",
    ],
    ids=repr,
)
def test_database_rejected(database):
    with pytest.raises(ValidationError):
        AsyncStore(database, kdf=FAST_KDF)

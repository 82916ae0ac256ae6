"""Hostile input: arbitrary data in the envelope decoder and in every
public argument, SQL-looking and look-alike names, values at the size
limit and unusual passwords.

The property-based tests run on SQLite with one store per test: each test
drives its own event loop with asyncio.Runner, because hypothesis calls
the inner function many times and async fixtures cannot be shared with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import string
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from _workers import open_stored
from conftest import FAST_KDF, OTHER_PASSWORD, PASSWORD
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.pwhash import argon2id

from vaultstore_async import (
    MAX_VALUE_BYTES,
    AsyncStore,
    BackendError,
    DecryptionError,
    KdfExecutor,
    KdfProfile,
    PasswordPolicy,
    Record,
    RecordQuery,
    TokenNotFoundError,
    ValidationError,
    VaultStoreError,
    _envelope,
)

PURE = settings(max_examples=300, deadline=None, database=None)
WITH_DB = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TOKEN = "tk_hostileinputbasetoken0001"
ALL_ROWS = RecordQuery(include_soft_deleted=True)

# Anything a caller might pass by mistake or on purpose.
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
    st.binary(max_size=64),
    st.lists(st.text(max_size=8), max_size=4),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(
        timezones=st.builds(
            timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23))
        )
    ),
    st.builds(object),
)


# The envelope decoder


def derive(password: str, envelope: _envelope.Envelope) -> bytes:
    return argon2id.kdf(
        32,
        unicodedata.normalize("NFC", password).encode("utf-8"),
        envelope.salt,
        opslimit=envelope.profile.opslimit,
        memlimit=envelope.profile.memlimit,
    )


def sealed_sample() -> str:
    master = argon2id.kdf(
        32,
        PASSWORD.encode(),
        b"s" * 16,
        opslimit=FAST_KDF.opslimit,
        memlimit=FAST_KDF.memlimit,
    )
    return _envelope.seal(master, TOKEN, b"sample plaintext", FAST_KDF, b"s" * 16)


SAMPLE = sealed_sample()


def encode_envelope(envelope: _envelope.Envelope) -> str:
    """Write a parsed envelope back in the stored format."""
    return ":".join(
        (
            _envelope.VERSION,
            _envelope.ALGORITHM,
            str(envelope.profile.opslimit),
            str(envelope.profile.memlimit // 1024),
            _envelope._b64encode(envelope.salt),
            _envelope._b64encode(envelope.box),
        )
    )


@PURE
@given(st.text(max_size=400))
def test_parse_arbitrary_text(text: str) -> None:
    with contextlib.suppress(DecryptionError):
        _envelope.parse(text)


@PURE
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_parse_non_text(value: Any) -> None:
    with pytest.raises(DecryptionError):
        _envelope.parse(value)


B64_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + "-_=+/ ", max_size=80
)
DECIMAL_TEXT = st.text(alphabet="0123456789-+ ", min_size=0, max_size=12)


@PURE
@given(DECIMAL_TEXT, DECIMAL_TEXT, B64_TEXT, B64_TEXT)
def test_parse_fields_canonical(ops: str, mem: str, salt: str, box: str) -> None:
    """Whatever parses writes back to exactly the text it came from."""
    text = f"vs1:argon2id:{ops}:{mem}:{salt}:{box}"
    try:
        envelope = _envelope.parse(text)
    except DecryptionError:
        return
    assert encode_envelope(envelope) == text


@PURE
@given(st.binary(min_size=0, max_size=200), st.binary(min_size=32, max_size=32))
def test_open_box_arbitrary_bytes(box: bytes, key: bytes) -> None:
    envelope = _envelope.Envelope(profile=FAST_KDF, salt=b"s" * 16, box=box)
    with pytest.raises(DecryptionError):
        _envelope.open_box(key, TOKEN, envelope)


MUTATIONS = st.tuples(
    st.sampled_from(["replace", "insert", "delete"]),
    st.integers(min_value=0, max_value=len(SAMPLE) - 1),
    st.characters(min_codepoint=32, max_codepoint=126),
)


@PURE
@given(MUTATIONS)
def test_mutated_value_never_opens(mutation: tuple[str, int, str]) -> None:
    kind, position, char = mutation
    if kind == "replace":
        changed = SAMPLE[:position] + char + SAMPLE[position + 1 :]
    elif kind == "insert":
        changed = SAMPLE[:position] + char + SAMPLE[position:]
    else:
        changed = SAMPLE[:position] + SAMPLE[position + 1 :]
    if changed == SAMPLE:
        return
    with pytest.raises(DecryptionError):
        envelope = _envelope.parse(changed)
        _envelope.open_box(derive(PASSWORD, envelope), TOKEN, envelope)


# Argument validation of every public method


def aware(days: int = 1) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def stored_text() -> str:
    return SAMPLE


# Each entry: method name -> (argument names, valid values). The property
# replaces one argument with junk; keyword-only arguments go by name.
CALLS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "create_token": (
        ["value", "password", "length", "expires_at"],
        {"value": "v", "password": PASSWORD, "length": 32, "expires_at": None},
    ),
    "create_custom_token": (
        ["token", "value", "password", "expires_at"],
        {"token": "custom", "value": "v", "password": PASSWORD, "expires_at": None},
    ),
    "read_token": (["token", "password"], {"token": TOKEN, "password": PASSWORD}),
    "update_token": (
        ["token", "value", "password", "new_password"],
        {"token": TOKEN, "value": "v", "password": PASSWORD, "new_password": None},
    ),
    "upsert_token": (
        ["token", "value", "password", "length", "expires_at"],
        {
            "token": TOKEN,
            "value": "v",
            "password": PASSWORD,
            "length": 32,
            "expires_at": None,
        },
    ),
    "token_exists": (["token"], {"token": TOKEN}),
    "renew_token": (["token", "expires_at"], {"token": TOKEN, "expires_at": None}),
    "delete_token": (["token"], {"token": "absent"}),
    "soft_delete_token": (["token"], {"token": "absent"}),
    "restore_token": (["token"], {"token": "absent"}),
    "read_tokens": (["tokens", "password"], {"tokens": [TOKEN], "password": PASSWORD}),
    "resolve_tokens": (
        ["mapping", "password"],
        {"mapping": {"k": TOKEN}, "password": PASSWORD},
    ),
    "change_password": (
        ["old_password", "new_password", "progress"],
        {
            "old_password": "not the password 1",
            "new_password": OTHER_PASSWORD,
            "progress": None,
        },
    ),
    "list_records": (["query"], {"query": None}),
    "count_records": (["query"], {"query": None}),
    "iter_records": (["query", "page_size"], {"query": None, "page_size": 10}),
    "find_record_by_id": (
        ["id", "include_soft_deleted"],
        {"id": "x", "include_soft_deleted": False},
    ),
    "find_record_by_token": (
        ["token", "include_soft_deleted"],
        {"token": TOKEN, "include_soft_deleted": False},
    ),
    "create_record": (["record"], {"record": None}),
    "update_record": (["record"], {"record": None}),
    "delete_record_by_id": (["id"], {"id": "absent"}),
    "delete_record_by_token": (["token"], {"token": "absent"}),
    "soft_delete_record_by_id": (["id"], {"id": "absent"}),
    "soft_delete_record_by_token": (["token"], {"token": "absent"}),
    "get_setting": (["key"], {"key": "k"}),
    "set_setting": (["key", "value"], {"key": "k", "value": "v"}),
    "delete_setting": (["key"], {"key": "absent"}),
}
KEYWORD_ONLY = {
    "length",
    "expires_at",
    "new_password",
    "progress",
    "page_size",
    "include_soft_deleted",
}
CALL_SLOTS = [
    (name, argument) for name, (arguments, _) in CALLS.items() for argument in arguments
]


async def call_method(store: AsyncStore, name: str, arguments: dict[str, Any]) -> Any:
    positional = [value for key, value in arguments.items() if key not in KEYWORD_ONLY]
    keywords = {key: value for key, value in arguments.items() if key in KEYWORD_ONLY}
    method = getattr(store, name)
    if name == "iter_records":
        return [record async for record in method(*positional, **keywords)]
    return await method(*positional, **keywords)


class StoreRunner:
    """One SQLite store on an event loop of its own, for hypothesis tests."""

    def __init__(self, folder: Path) -> None:
        self.runner = asyncio.Runner()
        self.store = AsyncStore(
            f"sqlite:///{folder / 'hostile.db'}",
            kdf=FAST_KDF,
            table_name="hostile_vault",
            meta_table_name="hostile_meta",
        )
        self.runner.run(self.store.connect())
        self.runner.run(self.store.create_custom_token(TOKEN, "base value", PASSWORD))

    def run(self, coroutine: Any) -> Any:
        return self.runner.run(coroutine)

    def close(self) -> None:
        self.runner.run(self.store.close())
        self.runner.close()


def outcome(action: Callable[[], Any]) -> str:
    """Run `action`; return 'ok' or the name of what it raised, flagging any
    exception that is not ours or that came from the database."""
    try:
        action()
    except BackendError as exc:
        return f"database error: {exc}"
    except VaultStoreError:
        return "ok"
    except Exception as exc:
        return f"undocumented {type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    return "ok"


def test_methods_reject_junk(tmp_path: Path) -> None:
    runner = StoreRunner(tmp_path)
    failures: list[str] = []

    @WITH_DB
    @given(st.sampled_from(CALL_SLOTS), JUNK)
    def check(slot: tuple[str, str], junk: Any) -> None:
        name, argument = slot
        arguments = dict(CALLS[name][1])
        arguments[argument] = junk
        result = outcome(lambda: runner.run(call_method(runner.store, name, arguments)))
        if result != "ok":
            failures.append(f"{name}({argument}={junk!r}): {result}")

    try:
        check()
    finally:
        runner.close()
    assert failures == []


RECORD_FIELDS = [
    "id",
    "token",
    "value",
    "created_at",
    "updated_at",
    "expires_at",
    "soft_deleted_at",
]


def test_records_reject_junk(tmp_path: Path) -> None:
    runner = StoreRunner(tmp_path)
    failures: list[str] = []

    @WITH_DB
    @given(st.sampled_from(RECORD_FIELDS), JUNK, st.sampled_from(["create", "update"]))
    def check(field: str, junk: Any, action: str) -> None:
        fields: dict[str, Any] = {"id": "rid", "token": "rtoken", "value": SAMPLE}
        fields[field] = junk
        record = Record(**fields)
        method = getattr(runner.store, f"{action}_record")
        result = outcome(lambda: runner.run(method(record)))
        if result != "ok":
            failures.append(f"{action}_record({field}={junk!r}): {result}")

    try:
        check()
    finally:
        runner.close()
    assert failures == []


QUERY_FIELDS = [
    "id",
    "id_in",
    "token",
    "token_in",
    "limit",
    "offset",
    "order_by",
    "descending",
    "include_soft_deleted",
    "only_soft_deleted",
    "expired",
    "created_after",
    "created_before",
]


def test_queries_reject_junk(tmp_path: Path) -> None:
    runner = StoreRunner(tmp_path)
    failures: list[str] = []

    @WITH_DB
    @given(
        st.sampled_from(QUERY_FIELDS), JUNK, st.sampled_from(["list", "count", "iter"])
    )
    def check(field: str, junk: Any, action: str) -> None:
        def run() -> None:
            query = RecordQuery(**{field: junk})
            runner.run(call_method(runner.store, f"{action}_records", {"query": query}))

        result = outcome(run)
        if result != "ok":
            failures.append(f"{action}_records({field}={junk!r}): {result}")

    try:
        check()
    finally:
        runner.close()
    assert failures == []


STORE_OPTIONS = [
    "table_name",
    "meta_table_name",
    "automigrate",
    "kdf",
    "password_policy",
    "key_cache_size",
    "key_cache_ttl",
    "key_reuse_writes",
    "key_reuse_seconds",
    "kdf_executor",
    "database_options",
]


@PURE
@given(st.sampled_from(["database", *STORE_OPTIONS]), JUNK)
def test_store_options_reject_junk(option: str, junk: Any) -> None:
    def build() -> None:
        if option == "database":
            AsyncStore(junk)
        else:
            AsyncStore("sqlite:///unused.db", **{option: junk})

    assert outcome(build) == "ok"


POLICY_FIELDS = [
    "min_length",
    "allow_empty",
    "require_lowercase",
    "require_uppercase",
    "require_digits",
    "require_symbols",
]


@PURE
@given(
    st.sampled_from(["opslimit", "memlimit", "preset", *POLICY_FIELDS, "check"]), JUNK
)
def test_config_objects_reject_junk(target: str, junk: Any) -> None:
    def build() -> None:
        if target in ("opslimit", "memlimit"):
            values = {"opslimit": 1, "memlimit": 8192, target: junk}
            KdfProfile(**values)
        elif target == "preset":
            KdfProfile.preset(junk)
        elif target == "check":
            PasswordPolicy().check(junk)
        else:
            PasswordPolicy(**{target: junk})

    assert outcome(build) == "ok"


@PURE
@given(st.sampled_from(["workers", "memory_budget"]), JUNK)
def test_kdf_executor_rejects_junk(argument: str, junk: Any) -> None:
    def build() -> None:
        values = {"workers": 1, "memory_budget": 1024**2, argument: junk}
        KdfExecutor(**values)

    assert outcome(build) == "ok"


async def paging_outcome(call: Callable[[], Any]) -> str:
    """Return 'accepted', 'rejected' (ValidationError) or the database error."""
    try:
        await call()
    except ValidationError:
        return "rejected"
    except BackendError as exc:
        return f"database error: {exc}"
    return "accepted"


@pytest.mark.parametrize("field", ["limit", "offset"])
async def test_query_huge_paging_rejected(store: AsyncStore, field: str) -> None:
    async def run() -> None:
        await store.list_records(RecordQuery(**{field: 2**64}))

    outcome = await paging_outcome(run)

    assert outcome in ("accepted", "rejected")


async def test_iter_huge_page_size_rejected(store: AsyncStore) -> None:
    async def consume() -> None:
        async for _ in store.iter_records(page_size=2**64):
            pass

    outcome = await paging_outcome(consume)

    assert outcome in ("accepted", "rejected")


# SQL-looking and look-alike names, on every backend


def fullwidth(text: str) -> str:
    """Return the fullwidth forms (U+FF01 to U+FF5E) of printable ASCII text."""
    return "".join(chr(ord(char) + 0xFEE0) for char in text)


HOSTILE_NAMES = [
    "plain",
    "it's",
    'say "hi"',
    "back`tick",
    "semi;colon",
    "dash -- comment",
    "/* block */",
    "' OR '1'='1",
    "x'; DROP TABLE vault; --",
    "100%",
    "%%",
    "%s",
    "%(name)s",
    "_",
    ":name",
    "a::text",
    "$1",
    "?",
    "back\\slash",
    "\\'",
    "tab\there",
    "new\nline",
    "\x01\x7f control",
    "latin a",
    "latin \u0430",  # Cyrillic small a
    "café",  # composed é
    "cafe\u0301",  # e + combining acute
    "token",
    "Token",
    "TOKEN",
    "token ",
    " token",
    fullwidth("token"),
    "to\u200bken",  # zero-width space
    "ß",
    "ss",
    "ﬁ",
    "fi",
    "\u202eright to left",
    "\ufeffbom",
    "\uffff",
    "🔑",
    "x" * 255,
    "🔑" * 255,
    "é" * 255,
]
REJECTED_NAMES = ["", "\x00", "a\x00b", "\ud800", "lone \udfff", "x" * 256, "é" * 256]


def value_for(index: int) -> str:
    return f"value {index} ✓"


async def test_hostile_tokens_round_trip(store: AsyncStore) -> None:
    for index, name in enumerate(HOSTILE_NAMES):
        await store.create_custom_token(name, value_for(index), PASSWORD)

    wrong = []
    for index, name in enumerate(HOSTILE_NAMES):
        if await store.read_token(name, PASSWORD) != value_for(index):
            wrong.append(name)
    assert wrong == []
    found = [await store.find_record_by_token(name) for name in HOSTILE_NAMES]
    assert [record.token if record else None for record in found] == HOSTILE_NAMES
    batch = await store.read_tokens(HOSTILE_NAMES, PASSWORD)
    assert batch == {name: value_for(i) for i, name in enumerate(HOSTILE_NAMES)}
    assert await store.count_records() == len(HOSTILE_NAMES)


async def test_hostile_tokens_delete_one(store: AsyncStore) -> None:
    for index, name in enumerate(HOSTILE_NAMES):
        await store.create_custom_token(name, value_for(index), PASSWORD)

    for name in ["token", "café", "ß", "latin a"]:
        assert await store.delete_token(name)

    left = {record.token for record in await store.list_records(ALL_ROWS)}
    assert left == set(HOSTILE_NAMES) - {"token", "café", "ß", "latin a"}


LOOK_ALIKES = {
    "token": [
        "Token",
        "TOKEN",
        "token ",
        " token",
        fullwidth("token"),
        "t\u043eken",
        "to\u200bken",
        "token\n",
        "token%",
        "tok_n",
        "tok%",
    ],
    "café": ["cafe\u0301", "CAFÉ", "café ", "cafe", "caf%"],
    "strasse": ["straße", "STRASSE"],
}


async def test_look_alike_tokens_not_found(store: AsyncStore) -> None:
    for name in LOOK_ALIKES:
        await store.create_custom_token(name, f"value of {name}", PASSWORD)

    leaks = []
    for variants in LOOK_ALIKES.values():
        for variant in variants:
            if await store.token_exists(variant):
                leaks.append(f"token_exists({variant!r})")
            try:
                await store.read_token(variant, PASSWORD)
                leaks.append(f"read_token({variant!r})")
            except TokenNotFoundError:
                pass
            if await store.find_record_by_token(variant) is not None:
                leaks.append(f"find_record_by_token({variant!r})")
            if await store.delete_token(variant):
                leaks.append(f"delete_token({variant!r})")
    assert leaks == []
    assert await store.count_records() == len(LOOK_ALIKES)


async def test_rejected_tokens_no_sql(store: AsyncStore) -> None:
    before = store.stats()["statements"]
    accepted = []
    for name in REJECTED_NAMES:
        for method, arguments in (
            (store.create_custom_token, (name, "v", PASSWORD)),
            (store.read_token, (name, PASSWORD)),
            (store.token_exists, (name,)),
            (store.delete_token, (name,)),
            (store.find_record_by_id, (name,)),
            (store.set_setting, (name, "v")),
            (store.get_setting, (name,)),
        ):
            try:
                await method(*arguments)
            except ValidationError:
                continue
            accepted.append(f"{method.__name__}({name!r})")
    assert accepted == []
    assert store.stats()["statements"] == before


async def test_hostile_setting_keys(store: AsyncStore) -> None:
    expected = {name: f"{name} = {index}" for index, name in enumerate(HOSTILE_NAMES)}
    for name, value in expected.items():
        await store.set_setting(name, value)

    assert await store.list_settings() == expected
    wrong = [
        name
        for name, value in expected.items()
        if await store.get_setting(name) != value
    ]
    assert wrong == []
    stray = [
        variant
        for variants in LOOK_ALIKES.values()
        for variant in variants
        if variant not in expected and await store.get_setting(variant) is not None
    ]
    assert stray == []


async def test_hostile_record_ids(store: AsyncStore) -> None:
    for index, name in enumerate(HOSTILE_NAMES):
        await store.create_record(Record(id=name, token=f"t{index}", value=SAMPLE))

    found = [await store.find_record_by_id(name) for name in HOSTILE_NAMES]
    tokens = [record.token if record else None for record in found]
    assert tokens == [f"t{index}" for index in range(len(HOSTILE_NAMES))]
    ids = sorted(record.id for record in await store.list_records())
    assert ids == sorted(HOSTILE_NAMES)
    stray = [
        variant
        for variants in LOOK_ALIKES.values()
        for variant in variants
        if variant not in HOSTILE_NAMES
        and await store.find_record_by_id(variant) is not None
    ]
    assert stray == []


async def test_hostile_ids_in_query(store: AsyncStore) -> None:
    for index, name in enumerate(HOSTILE_NAMES):
        await store.create_record(Record(id=name, token=f"t{index}", value=SAMPLE))
    half = HOSTILE_NAMES[::2]

    by_id = await store.list_records(RecordQuery(id_in=half))
    by_token = await store.count_records(RecordQuery(token_in=["t0", "t1", "T0"]))

    assert sorted(record.id for record in by_id) == sorted(half)
    assert by_token == 2


# Values at the size limit, on every backend

EURO = "€"  # 3 bytes in UTF-8
MULTIBYTE_MAX = EURO * (MAX_VALUE_BYTES // 3) + "a" * (MAX_VALUE_BYTES % 3)


async def test_max_value_ascii(store: AsyncStore) -> None:
    value = "a" * MAX_VALUE_BYTES

    token = await store.create_token(value, PASSWORD)

    assert await store.read_token(token, PASSWORD) == value


async def test_max_value_multibyte(store: AsyncStore) -> None:
    assert len(MULTIBYTE_MAX.encode("utf-8")) == MAX_VALUE_BYTES
    token = await store.create_token("small", PASSWORD)

    await store.update_token(token, MULTIBYTE_MAX, PASSWORD)

    assert await store.read_token(token, PASSWORD) == MULTIBYTE_MAX


OVERSIZE = {
    "ascii": "a" * (MAX_VALUE_BYTES + 1),
    "multibyte": EURO * (MAX_VALUE_BYTES // 3 + 1),
    "four byte": "🔑" * (MAX_VALUE_BYTES // 4 + 1),
}


@pytest.mark.parametrize("kind", sorted(OVERSIZE))
async def test_oversize_value_no_sql(store: AsyncStore, kind: str) -> None:
    value = OVERSIZE[kind]
    token = await store.create_token("small", PASSWORD)
    before = store.stats()["statements"]
    accepted = []

    for name, call in (
        ("create_token", lambda: store.create_token(value, PASSWORD)),
        (
            "create_custom_token",
            lambda: store.create_custom_token("c", value, PASSWORD),
        ),
        ("update_token", lambda: store.update_token(token, value, PASSWORD)),
        ("upsert_token", lambda: store.upsert_token(token, value, PASSWORD)),
        ("upsert_token new", lambda: store.upsert_token(None, value, PASSWORD)),
    ):
        try:
            await call()
        except ValidationError:
            continue
        accepted.append(name)

    assert accepted == []
    assert store.stats()["statements"] == before
    assert await store.read_token(token, PASSWORD) == "small"


# Passwords

PASSWORDS = {
    "unicode": "pässwörd 密码 пароль 🔑 كلمة",
    "nul bytes": "nul\x00inside\x00the password",
    "ten thousand": "long password " * 714 + "0123",
    "control characters": "\t\n\r\x1b password 0123",
    "right to left": "\u202epassword 0123456789",
    "fullwidth": fullwidth("password12345678"),
}


@pytest.mark.parametrize("kind", sorted(PASSWORDS))
async def test_password_round_trip(store: AsyncStore, kind: str) -> None:
    password = PASSWORDS[kind]

    token = await store.create_token("guarded", password)

    assert await store.read_token(token, password) == "guarded"
    with pytest.raises(DecryptionError):
        await store.read_token(token, password[:-1] + "#")


async def test_password_ten_thousand_chars(store: AsyncStore) -> None:
    password = PASSWORDS["ten thousand"]
    assert len(password) == 10_000
    token = await store.create_token("guarded", password)

    await store.change_password(password, password[::-1])

    assert await store.read_token(token, password[::-1]) == "guarded"


async def test_password_normal_forms_match(store: AsyncStore) -> None:
    composed = "mot de passe épée 1234"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed

    token = await store.create_token("guarded", composed)

    assert await store.read_token(token, decomposed) == "guarded"


async def test_password_lone_surrogate_rejected(store: AsyncStore) -> None:
    before = store.stats()["statements"]

    with pytest.raises(ValidationError):
        await store.create_token("v", "password with \ud800 surrogate")

    assert store.stats()["statements"] == before


async def test_stored_value_opens_outside(store: AsyncStore) -> None:
    """The helper used by the other test modules decrypts what the store wrote."""
    token = await store.create_token("outside", PASSWORD)
    record = await store.find_record_by_token(token)
    assert record is not None

    assert open_stored(record.value, token, PASSWORD) == "outside"

"""Decoding values written by the Go VaultStore library, without a database.

The vectors were produced by the Go library's own encoders. Crafted legacy
values come from a test-side encoder and check every bound the Go decoder
left unchecked (it panicked on them).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
from datetime import UTC, datetime

import databases
import pytest
from _go_helpers import legacy_encode, legacy_wrap, vectors
from conftest import drop_tables
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultstore_async import (
    AsyncStore,
    DecryptionError,
    GoSupportMissingError,
    KdfProfile,
    ValidationError,
    VaultStoreError,
)
from vaultstore_async import _goformat as go
from vaultstore_async import _goimport as goimport

VECTORS = vectors()
PASSWORD = "pw-sixteen-chars"


def _id(vector: dict[str, object]) -> str:
    size = len(str(vector["plaintext"]))
    password = str(vector["password"])[:8]
    return f"{vector['format']}-{vector['preset']}-{size}-{password}"


def decode(stored: str, password: str, preset: go.GoArgon2 | None = None) -> str:
    """Decode as the store does, with one known Argon2 setting for v2."""
    secret = password.encode("utf-8")
    if not stored.startswith(go.V2_PREFIX):
        return go.utf8_text(go.open_legacy(stored, secret))
    value = go.parse_v2(stored)
    assert preset is not None
    plaintext = go.open_v2(preset.derive(secret, value.salt), value)
    if plaintext is None:
        raise DecryptionError()
    return go.utf8_text(plaintext)


def test_all_vectors_are_present() -> None:
    assert len(VECTORS) == 48
    formats = {(v["format"], v["preset"]) for v in VECTORS}
    assert formats == {("v2", "default"), ("v2", "lightweight"), ("v1", "legacy")}


@pytest.mark.parametrize("vector", VECTORS, ids=_id)
def test_every_vector_decodes(vector: dict[str, object]) -> None:
    stored = str(vector["stored"])
    assert go.is_go_value(stored)
    preset = None
    if vector["format"] == "v2":
        preset = go.GoArgon2(
            time=int(str(vector["argon2_time"])),
            memory_kib=int(str(vector["argon2_memory_kib"])),
            lanes=int(str(vector["argon2_lanes"])),
        )
        assert preset == go.GO_PRESETS[str(vector["preset"])]
    assert decode(stored, str(vector["password"]), preset) == vector["plaintext"]


@pytest.mark.parametrize(
    "vector",
    [v for v in VECTORS if v["plaintext"] == "hello"],
    ids=_id,
)
def test_wrong_password_fails_every_format(vector: dict[str, object]) -> None:
    preset = go.GO_PRESETS.get(str(vector["preset"]))
    with pytest.raises(DecryptionError):
        decode(str(vector["stored"]), str(vector["password"]) + "x", preset)


def test_legacy_encoder_matches_vectors() -> None:
    # Each legacy vector decodes, and so does our own encoding of the same
    # plaintext, so the crafted inputs below exercise the real format.
    for vector in VECTORS:
        if vector["format"] != "v1":
            continue
        password, plaintext = str(vector["password"]), str(vector["plaintext"])
        assert decode(legacy_encode(plaintext, password), password) == plaintext


def _framed(length: bytes, inner: bytes, padding: bytes = b"") -> str:
    return legacy_wrap(length + b"_" + inner + padding, PASSWORD)


INNER = base64.urlsafe_b64encode(b"secret value")

CRAFTED = {
    "negative length": _framed(b"-4", INNER),
    "length past the end": _framed(str(len(INNER) + 1).encode(), INNER),
    "length beyond int64": _framed(b"9" * 40, INNER),
    "huge length with sign": _framed(b"+" + b"9" * 19, INNER),
    "length of 5000 digits": _framed(b"9" * 5000, INNER),
    "negative zeros then a length": _framed(b"-" + b"0" * 5000 + b"4", INNER),
    "length not a number": _framed(b"1e3", INNER),
    "unicode digits as length": _framed("١٢".encode(), INNER),
    "empty length": _framed(b"", INNER),
    "no separator": legacy_wrap(b"12" + INNER, PASSWORD),
    "inner not base64": _framed(b"4", b"!!!!"),
    "inner cut inside a group": _framed(b"3", INNER),
    "inner with standard alphabet": _framed(b"4", b"ab+/"),
    "outer text with url alphabet": legacy_wrap(b"\xfb\xff" * 8, PASSWORD),
    "empty framed text": legacy_wrap(b"", PASSWORD),
    "not base64 at all": "#" * 8,
    "wrong padding": "abc=" + "abcd",
    "length not a multiple of four": "abcde",
    "non-ascii": "ab\u00e9d",
    "binary after xor": base64.urlsafe_b64encode(bytes(range(256))).decode(),
}


@pytest.mark.parametrize("stored", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_legacy_values_rejected(stored: str) -> None:
    with pytest.raises(DecryptionError):
        go.open_legacy(stored, PASSWORD.encode())


def test_legacy_zero_length_is_empty() -> None:
    assert go.open_legacy(_framed(b"0", INNER), PASSWORD.encode()) == b""


def test_legacy_signed_length_accepted() -> None:
    assert go.open_legacy(_framed(b"+16", INNER), PASSWORD.encode()) == b"secret value"


def test_legacy_leading_zeros_accepted() -> None:
    padded = _framed(b"0" * 5000 + b"16", INNER)
    assert go.open_legacy(padded, PASSWORD.encode()) == b"secret value"


CRAFTED_V2 = {
    "no body": "v2:",
    "too short": "v2:" + base64.urlsafe_b64encode(b"x" * 43).decode(),
    "missing padding": "v2:" + base64.urlsafe_b64encode(b"x" * 50).decode().rstrip("="),
    "standard alphabet": "v2:" + "+/" * 32,
    "non-ascii": "v2:" + "é" * 64,
    "spaces": "v2: " + "A" * 63,
}


@pytest.mark.parametrize("stored", CRAFTED_V2.values(), ids=CRAFTED_V2.keys())
def test_crafted_v2_values_rejected(stored: str) -> None:
    with pytest.raises(DecryptionError):
        go.parse_v2(stored)


def test_non_utf8_plaintext_hides_content() -> None:
    with pytest.raises(DecryptionError, match="not UTF-8") as caught:
        go.utf8_text(b"\xff\xfesecret")
    assert "secret" not in str(caught.value)


FAST = go.GoArgon2(time=1, memory_kib=8, lanes=1)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_only_decryption_error(stored: str) -> None:
    try:
        if stored.startswith(go.V2_PREFIX):
            value = go.parse_v2(stored)
            go.open_v2(FAST.derive(b"password", value.salt), value)
        elif go.is_go_value(stored):
            go.open_legacy(stored, b"password")
    except DecryptionError:
        pass


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=40),
        st.integers(0, 6000).map(lambda digits: b"9" * digits),
        st.integers(0, 6000).map(
            lambda zeros: b"-" * (zeros % 2) + b"0" * zeros + b"4"
        ),
    ),
    st.binary(max_size=200),
    st.binary(max_size=60),
)
def test_framed_legacy_only_decryption_error(
    length: bytes, inner: bytes, padding: bytes
) -> None:
    stored = legacy_wrap(length + b"_" + inner + padding, PASSWORD)
    try:
        result = go.open_legacy(stored, PASSWORD.encode())
    except DecryptionError:
        return
    assert isinstance(result, bytes)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_base64_bodies_only_decryption_error(body: bytes) -> None:
    stored = base64.urlsafe_b64encode(body).decode("ascii")
    if stored:
        with contextlib.suppress(DecryptionError):
            go.open_legacy(stored, PASSWORD.encode())
        try:
            value = go.parse_v2("v2:" + stored)
            assert go.open_v2(FAST.derive(b"pw", value.salt), value) is None
        except DecryptionError:
            pass


@pytest.mark.parametrize(
    "presets",
    [
        "default",
        None,
        ("medium",),
        (("3", 65536, 4),),
        ((3, 65536),),
        ((0, 65536, 4),),
        ((3, 16, 4),),
        ((3, 65536, 0),),
        ((3, 65536, 256),),
        ((3, 2**40, 4),),
        ((True, 65536, 4),),
        (None,),
    ],
)
def test_bad_go_presets_are_rejected(presets: object) -> None:
    with pytest.raises(ValidationError, match="go_presets"):
        AsyncStore("sqlite:///:memory:", go_presets=presets)  # type: ignore[arg-type]


def test_go_presets_take_names_and_tuples() -> None:
    assert go.resolve_presets(("lightweight", (1, 64, 2), "default")) == (
        go.GO_PRESETS["lightweight"],
        go.GoArgon2(time=1, memory_kib=64, lanes=2),
        go.GO_PRESETS["default"],
    )
    assert go.GO_PRESETS["high"] == go.GoArgon2(time=4, memory_kib=131072, lanes=4)


def test_missing_extra_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "argon2", None)
    with pytest.raises(GoSupportMissingError, match=r"vaultstore_async\[go\]"):
        go.require_support()
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(GoSupportMissingError, match="'go' extra"):
        go.require_support()
    assert issubclass(GoSupportMissingError, VaultStoreError)


def _go_shaped() -> st.SearchStrategy[str]:
    """Values that reach the Go decoders: legacy base64, framed legacy
    content under the right password, and `v2:` bodies."""
    legacy = st.binary(max_size=200).map(
        lambda data: base64.urlsafe_b64encode(data).decode("ascii")
    )
    framed = st.tuples(
        st.binary(max_size=30), st.binary(max_size=120), st.binary(max_size=40)
    ).map(lambda parts: legacy_wrap(parts[0] + b"_" + parts[1] + parts[2], PASSWORD))
    v2 = st.binary(max_size=120).map(
        lambda data: "v2:" + base64.urlsafe_b64encode(data).decode("ascii")
    )
    return st.one_of(legacy, framed, v2).filter(bool)


def test_store_reads_crafted_rows(db_url: str, table_names: dict[str, str]) -> None:
    # Every planted value either opens or raises one of our exceptions, and
    # nothing else escapes read_token, read_tokens or upgrade_format.
    runner = asyncio.Runner()
    store = AsyncStore(
        db_url,
        kdf=KdfProfile.preset("insecure_fast_for_tests"),
        go_presets=((1, 8, 1),),
        **table_names,
    )
    planter = databases.Database(db_url)
    runner.run(store.connect())
    runner.run(planter.connect())
    runner.run(store.create_custom_token("tk_crafted", "base", PASSWORD))
    failures: list[str] = []

    async def plant_and_read(stored: str) -> None:
        await planter.execute(
            f"UPDATE {table_names['table_name']} SET vault_value = :value"
            " WHERE vault_token = :token",
            {"value": stored, "token": "tk_crafted"},
        )
        for call in (
            lambda: store.read_token("tk_crafted", PASSWORD),
            lambda: store.read_tokens(["tk_crafted"], PASSWORD),
            lambda: store.upgrade_format(PASSWORD),
        ):
            try:
                await call()
            except (DecryptionError, GoSupportMissingError):
                pass
            except Exception as exc:
                failures.append(f"{stored!r}: {type(exc).__name__}: {exc}")

    @settings(max_examples=100, deadline=None, database=None)
    @given(_go_shaped())
    def check(stored: str) -> None:
        runner.run(plant_and_read(stored))

    try:
        check()
    finally:
        runner.run(store.close())
        runner.run(planter.disconnect())
        runner.run(drop_tables(db_url, table_names))
        runner.close()
    assert failures == []


UTC_2024 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02 03:04:05", UTC_2024),
        ("2024-01-02T03:04:05Z", UTC_2024),
        ("2024-01-02T05:04:05+02:00", UTC_2024),
        ("2024-01-01T22:04:05-0500", UTC_2024),
        (" 2024-01-02 03:04:05 ", UTC_2024),
        ("2024-01-02 03:04:05.250", UTC_2024.replace(microsecond=250000)),
        (datetime(2024, 1, 2, 3, 4, 5), UTC_2024),
        ("9999-12-31 23:59:59", goimport.SENTINEL),
        ("9999-12-31T23:59:59-01:00", goimport.SENTINEL),
        ("0500-01-01 00:00:00", goimport.EARLIEST),
        (None, goimport.EMPTY),
        ("", goimport.EMPTY),
        ("0000-00-00 00:00:00", goimport.EMPTY),
    ],
)
def test_go_time_formats(text: object, expected: object) -> None:
    assert goimport.go_time(text, "expires_at") == expected


@pytest.mark.parametrize(
    "text", ["next tuesday", "2024-02-30 00:00:00", "2024-01-02", 17, b"\xff"]
)
def test_go_time_rejects_garbage(text: object) -> None:
    with pytest.raises(goimport.RowRejected, match="expires_at"):
        goimport.go_time(text, "expires_at")


NOW = datetime(2026, 6, 1, tzinfo=UTC)
HELLO = next(str(v["stored"]) for v in VECTORS if v["format"] == "v1")


def _converted(**columns: object) -> goimport.ImportRow:
    row = {
        "id": "1",
        "vault_token": "tk_a",
        "vault_value": HELLO,
        "created_at": "2024-01-02 03:04:05",
        "updated_at": "2024-01-02 03:04:05",
        "expires_at": "9999-12-31 23:59:59",
        "soft_deleted_at": "9999-12-31 23:59:59",
        **columns,
    }
    return goimport.convert_row(row, NOW)


def test_convert_row_mapping_rules() -> None:
    live = _converted()
    assert live.expires_at is None
    assert live.soft_deleted_at is None
    assert live.created_at == UTC_2024

    hidden = _converted(soft_deleted_at=None)
    assert hidden.soft_deleted_at == NOW

    deleted = _converted(soft_deleted_at="2025-01-01 00:00:00")
    assert deleted.soft_deleted_at == datetime(2025, 1, 1, tzinfo=UTC)

    scheduled = _converted(soft_deleted_at="2027-01-01 00:00:00")
    assert scheduled.soft_deleted_at is None
    assert scheduled.expires_at == datetime(2027, 1, 1, tzinfo=UTC)

    earlier = _converted(
        soft_deleted_at="2027-01-01 00:00:00", expires_at="2026-07-01 00:00:00"
    )
    assert earlier.expires_at == datetime(2026, 7, 1, tzinfo=UTC)

    no_times = _converted(created_at=None, updated_at="", expires_at=None)
    assert no_times.created_at == NOW
    assert no_times.updated_at == NOW
    assert no_times.expires_at is None

    one_time = _converted(created_at=None)
    assert one_time.created_at == UTC_2024

    no_id = _converted(id=None)
    assert no_id.id_generated
    assert len(no_id.id) == 32

    with pytest.raises(goimport.RowRejected, match="vault_value is not text"):
        _converted(vault_value=HELLO.encode())
    with pytest.raises(goimport.RowRejected, match="vault_value is empty"):
        _converted(vault_value=None)

    missing_columns = goimport.convert_row(
        {"id": "2", "vault_token": "tk_b", "vault_value": HELLO}, NOW
    )
    assert missing_columns.expires_at is None
    assert missing_columns.soft_deleted_at is None

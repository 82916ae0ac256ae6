"""Importing a Go VaultStore table and reading it through the normal API,
on SQLite, PostgreSQL and MariaDB.

The Go table contains every published vector under two passwords in all
three formats. It also has the awkward rows a real Go table collects:
soft-deleted and expired rows, a scheduled deletion, NULL and empty
timestamps, and rows that cannot be carried over.
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import databases
import pytest
import pytest_asyncio
from _go_helpers import (
    PAST,
    SENTINEL,
    create_go_tables,
    drop_go_tables,
    go_row,
    go_table_names,
    insert_go_rows,
    insert_go_setting,
    legacy_encode,
    vectors,
)
from _helpers import fetch_row, stored_value, utc_time
from conftest import FAST_KDF, MakeStore, backend_url, drop_tables

from vaultstore_async import (
    AsyncStore,
    DecryptionError,
    GoSupportMissingError,
    TokenExpiredError,
    TokenNotFoundError,
    ValidationError,
    import_go,
)

PW_A = "pw-sixteen-chars"
PW_B = "another long password 1234"
PRESETS = ("lightweight", "default")
VECTORS = vectors()


def _future(days: int) -> str:
    moment = datetime.now(UTC) + timedelta(days=days)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def vector_rows() -> list[dict[str, Any]]:
    return [
        go_row(f"2024{index:028d}", f"tk_vec{index:02d}_{vector['format']}", v)
        for index, vector in enumerate(VECTORS)
        for v in [str(vector["stored"])]
    ]


def _first(password: str, fmt: str) -> str:
    return next(
        str(v["stored"])
        for v in VECTORS
        if v["password"] == password
        and v["format"] == fmt
        and v["plaintext"] == "hello"
    )


HELLO_A = _first(PW_A, "v2")
HELLO_LEGACY = _first(PW_A, "v1")


def special_rows(mysql: bool) -> list[dict[str, Any]]:
    empty = None if mysql else ""
    return [
        go_row("3000", "tk_deleted", HELLO_A, soft_deleted_at=PAST),
        go_row("3001", "tk_expired", HELLO_A, expires_at=PAST),
        go_row("3002", "tk_scheduled", HELLO_A, soft_deleted_at=_future(3)),
        go_row(
            "3003",
            "tk_null_times",
            HELLO_LEGACY,
            created_at=None,
            updated_at=None,
            expires_at=None,
            soft_deleted_at=SENTINEL,
        ),
        go_row("3004", "tk_null_deleted", HELLO_A, soft_deleted_at=None),
        go_row("3005", "tk_empty_times", HELLO_A, created_at=empty, expires_at=empty),
        go_row("3006", "tk_expires_later", HELLO_A, expires_at=_future(10)),
    ]


REJECTED_ROWS = [
    go_row("4000", "tk_not_go", "vs1:argon2id:1:8:abc:def"),
    go_row("4001", "tk_damaged_v2", "v2:" + "A" * 40),
    go_row("4002", "tk_bad_time", HELLO_A, expires_at="next tuesday"),
    go_row("4003", "", HELLO_A),
]


class GoSource:
    def __init__(self, url: str, vault: str, meta: str) -> None:
        self.url, self.vault, self.meta = url, vault, meta


@pytest_asyncio.fixture
async def go_source(db_url: str) -> AsyncIterator[GoSource]:
    vault, meta = go_table_names()
    await create_go_tables(db_url, vault, meta)
    try:
        yield GoSource(db_url, vault, meta)
    finally:
        await drop_go_tables(db_url, vault, meta)


async def fill(source: GoSource, *, with_rejects: bool = True) -> None:
    rows = vector_rows() + special_rows(source.url.startswith("mysql"))
    if with_rejects:
        rows += [
            row
            for row in REJECTED_ROWS
            # MariaDB's DATETIME column cannot hold text that is not a time.
            if not (source.url.startswith("mysql") and row["id"] == "4002")
        ]
    await insert_go_rows(source.url, source.vault, rows)
    await insert_go_setting(source.url, source.meta, "owner", "payments")
    await insert_go_setting(source.url, source.meta, "region", "eu-west")
    # Go read the first row of a key; a later duplicate is ignored.
    await insert_go_setting(source.url, source.meta, "owner", "ignored duplicate")


async def target(make_store: MakeStore, **options: Any) -> AsyncStore:
    return await make_store(**{"go_presets": PRESETS, **options})


async def run_import(store: AsyncStore, source: GoSource, **options: Any):
    return await store.import_go(
        source.url,
        source_table=source.vault,
        source_meta_table=source.meta,
        **options,
    )


async def test_import_reads_every_vector_back(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await fill(go_source, with_rejects=False)
    store = await target(make_store)
    report = await run_import(store, go_source)
    assert report.imported == len(VECTORS) + 7
    assert report.skipped == 0
    assert report.rejected == []
    assert report.scheduled_deletions == 1
    assert report.settings_imported == 2
    for index, vector in enumerate(VECTORS):
        token = f"tk_vec{index:02d}_{vector['format']}"
        assert (
            await store.read_token(token, str(vector["password"]))
            == vector["plaintext"]
        )
        # Tokens and stored values are copied unchanged.
        assert (
            await stored_value(go_source.url, store.table_name, token)
            == vector["stored"]
        )
    assert await store.list_settings() == {"owner": "payments", "region": "eu-west"}


async def test_batch_reads_decode_go_values(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await fill(go_source, with_rejects=False)
    store = await target(make_store)
    await run_import(store, go_source)
    tokens = {
        f"tk_vec{index:02d}_{vector['format']}": vector["plaintext"]
        for index, vector in enumerate(VECTORS)
        if vector["password"] == PW_A
    }
    assert await store.read_tokens(list(tokens), PW_A) == tokens
    mapping = {f"KEY_{n}": token for n, token in enumerate(tokens)}
    resolved = await store.resolve_tokens(mapping, PW_A)
    assert resolved == {key: tokens[token] for key, token in mapping.items()}
    with pytest.raises(DecryptionError):
        await store.read_tokens(list(tokens), PW_B)


async def test_expiry_and_soft_deletion_carry_over(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await fill(go_source, with_rejects=False)
    store = await target(make_store)
    await run_import(store, go_source)

    with pytest.raises(TokenNotFoundError):
        await store.read_token("tk_deleted", PW_A)
    deleted = await store.find_record_by_token("tk_deleted", include_soft_deleted=True)
    assert deleted is not None
    assert deleted.soft_deleted_at == datetime(2020, 1, 1, tzinfo=UTC)
    await store.restore_token("tk_deleted")
    assert await store.read_token("tk_deleted", PW_A) == "hello"

    with pytest.raises(TokenExpiredError):
        await store.read_token("tk_expired", PW_A)
    assert await store.delete_expired_tokens() == 1

    # A Go row with a future soft_deleted_at is live until then: it stays
    # readable and expires at that moment.
    assert await store.read_token("tk_scheduled", PW_A) == "hello"
    scheduled = await store.find_record_by_token("tk_scheduled")
    assert scheduled is not None
    assert scheduled.expires_at is not None
    assert scheduled.expires_at > datetime.now(UTC) + timedelta(days=2)

    later = await store.find_record_by_token("tk_expires_later")
    assert later is not None
    assert later.expires_at is not None
    assert later.expires_at > datetime.now(UTC) + timedelta(days=9)
    sentinel = await store.find_record_by_token("tk_vec00_v2")
    assert sentinel is not None
    assert sentinel.expires_at is None
    assert sentinel.soft_deleted_at is None
    assert sentinel.created_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


async def test_null_timestamps_never_revive_secrets(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await fill(go_source, with_rejects=False)
    store = await target(make_store)
    before = datetime.now(UTC) - timedelta(seconds=5)
    await run_import(store, go_source)

    # NULL soft_deleted_at: Go's "soft_deleted_at > now" was never true, so
    # the row was hidden; it arrives soft-deleted, not live.
    with pytest.raises(TokenNotFoundError):
        await store.read_token("tk_null_deleted", PW_A)
    hidden = await store.find_record_by_token(
        "tk_null_deleted", include_soft_deleted=True
    )
    assert hidden is not None
    assert hidden.soft_deleted_at is not None

    # NULL expiry meant "never" to Go; NULL created/updated take the import time.
    assert await store.read_token("tk_null_times", PW_A) == "hello"
    row = await store.find_record_by_token("tk_null_times")
    assert row is not None
    assert row.expires_at is None
    assert row.created_at >= before
    assert row.updated_at >= before

    empty = await store.find_record_by_token("tk_empty_times")
    assert empty is not None
    assert empty.expires_at is None
    assert empty.created_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


async def test_unconvertible_rows_are_reported(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await fill(go_source)
    store = await target(make_store)
    report = await run_import(store, go_source)
    reasons = {item.source: item.reason for item in report.rejected}
    assert reasons["row 4000"] == "vault_value is not in a Go VaultStore format"
    assert reasons["row 4001"] == "vault_value is a damaged v2 value"
    assert reasons["row 4003"] == "vault_token must not be empty"
    if not go_source.url.startswith("mysql"):
        assert reasons["row 4002"] == "expires_at is not a time in the Go format"
    assert report.imported == len(VECTORS) + 7
    assert report.rows_rejected == len(reasons)
    assert report.examined == len(VECTORS) + 7 + len(reasons)
    for token in ("tk_not_go", "tk_damaged_v2", "tk_bad_time"):
        assert not await store.token_exists(token)
    for item in report.rejected:
        assert "hello" not in item.reason
        assert "v2:" not in item.reason


async def test_second_import_skips_existing_rows(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await fill(go_source)
    store = await target(make_store)
    first = await run_import(store, go_source)
    await store.update_token("tk_vec01_v2", "changed after import", PW_A)
    await insert_go_rows(
        go_source.url, go_source.vault, [go_row("5000", "tk_new", HELLO_A)]
    )

    second = await run_import(store, go_source)
    assert second.imported == 1
    assert second.skipped == first.imported
    assert second.rows_rejected == first.rows_rejected
    assert second.settings_skipped == 2
    assert await store.read_token("tk_vec01_v2", PW_A) == "changed after import"
    assert await store.read_token("tk_new", PW_A) == "hello"


async def test_token_clash_rejected_not_overwritten(
    make_store: MakeStore, go_source: GoSource
) -> None:
    store = await target(make_store)
    await store.create_custom_token("tk_clash", "ours", "a long enough password")
    await store.set_setting("owner", "ours")
    await insert_go_rows(
        go_source.url, go_source.vault, [go_row("6000", "tk_clash", HELLO_A)]
    )
    await insert_go_setting(go_source.url, go_source.meta, "owner", "theirs")
    report = await run_import(store, go_source)
    assert [(r.source, r.reason) for r in report.rejected] == [
        ("row 6000", "the target already has the token"),
        ("setting 'owner'", "the target has another value for it"),
    ]
    assert await store.read_token("tk_clash", "a long enough password") == "ours"
    assert await store.get_setting("owner") == "ours"


async def test_dry_run_changes_nothing(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await fill(go_source)
    store = await target(make_store)
    dry = await run_import(store, go_source, dry_run=True)
    assert dry.dry_run
    assert dry.imported == len(VECTORS) + 7
    assert await store.count_records() == 0
    assert await store.list_settings() == {}
    real = await run_import(store, go_source)
    assert (real.imported, real.rows_rejected) == (dry.imported, dry.rows_rejected)


async def test_upgrade_format_only_matching_rows(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await fill(go_source, with_rejects=False)
    store = await target(make_store)
    await run_import(store, go_source)
    under_a = {
        f"tk_vec{index:02d}_{v['format']}": v["plaintext"]
        for index, v in enumerate(VECTORS)
        if v["password"] == PW_A
    }

    seen: list[tuple[int, int]] = []
    changed = await store.upgrade_format(
        PW_A, progress=lambda e, c: seen.append((e, c))
    )
    # The vectors under PW_A and the 7 special rows, soft-deleted ones too.
    assert changed == len(under_a) + 7
    assert seen
    assert seen[-1][1] == changed
    for token, plaintext in under_a.items():
        stored = await stored_value(go_source.url, store.table_name, token)
        assert stored.startswith("vs1:")
        assert await store.read_token(token, PW_A) == plaintext

    untouched = next(
        f"tk_vec{index:02d}_{v['format']}"
        for index, v in enumerate(VECTORS)
        if v["password"] == PW_B
    )
    assert not (
        await stored_value(go_source.url, store.table_name, untouched)
    ).startswith("vs1:")
    assert await store.upgrade_format(PW_A) == 0
    deleted = await fetch_row(go_source.url, store.table_name, "tk_deleted")
    assert str(deleted["vault_value"]).startswith("vs1:")
    assert utc_time(deleted["soft_deleted_at"]) == datetime(2020, 1, 1, tzinfo=UTC)


async def test_upgrade_on_read_rewrites_rows(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await insert_go_rows(
        go_source.url,
        go_source.vault,
        [
            go_row("7000", "tk_one", HELLO_A),
            go_row("7001", "tk_two", HELLO_LEGACY),
            go_row("7002", "tk_three", legacy_encode("third", PW_A)),
        ],
    )
    store = await target(make_store, upgrade_on_read=True)
    await run_import(store, go_source)
    assert await store.read_token("tk_one", PW_A) == "hello"
    assert (await stored_value(go_source.url, store.table_name, "tk_one")).startswith(
        "vs1:"
    )
    assert await store.read_tokens(["tk_two", "tk_three"], PW_A) == {
        "tk_two": "hello",
        "tk_three": "third",
    }
    for token in ("tk_two", "tk_three"):
        value = await stored_value(go_source.url, store.table_name, token)
        assert value.startswith("vs1:")
    # The rewritten rows are bound to their token like any other.
    assert await store.read_token("tk_two", PW_A) == "hello"


async def test_unnormalised_go_password_opens(
    make_store: MakeStore, go_source: GoSource
) -> None:
    # Go hashed the UTF-8 of the password as typed; this library hashes its
    # NFC form. A decomposed "é" must still open the Go value.
    typed = "cafe\u0301 password of some length"
    await insert_go_rows(
        go_source.url,
        go_source.vault,
        [go_row("7050", "tk_nfd", legacy_encode("accented", typed))],
    )
    store = await target(make_store)
    await run_import(store, go_source)
    assert await store.read_token("tk_nfd", typed) == "accented"
    with pytest.raises(DecryptionError):
        await store.read_token("tk_nfd", "cafe password of some length")


async def test_reads_keep_go_rows_by_default(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await insert_go_rows(
        go_source.url, go_source.vault, [go_row("7100", "tk_one", HELLO_A)]
    )
    store = await target(make_store)
    await run_import(store, go_source)
    assert await store.read_token("tk_one", PW_A) == "hello"
    assert await stored_value(go_source.url, store.table_name, "tk_one") == HELLO_A


async def test_update_and_rekey_write_vs1(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await insert_go_rows(
        go_source.url,
        go_source.vault,
        [go_row("7200", "tk_upd", HELLO_A), go_row("7201", "tk_rot", HELLO_LEGACY)],
    )
    store = await target(make_store)
    await run_import(store, go_source)
    with pytest.raises(DecryptionError):
        await store.update_token("tk_upd", "new value", PW_B)
    await store.update_token("tk_upd", "new value", PW_A)
    assert (await stored_value(go_source.url, store.table_name, "tk_upd")).startswith(
        "vs1:"
    )
    assert await store.change_password(PW_A, PW_B) == 2
    assert await store.read_token("tk_rot", PW_B) == "hello"
    assert await store.read_token("tk_upd", PW_B) == "new value"


async def test_upgrade_keeps_concurrent_update(
    make_store: MakeStore, go_source: GoSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    await insert_go_rows(
        go_source.url,
        go_source.vault,
        [go_row("7300", "tk_race", HELLO_A), go_row("7301", "tk_calm", HELLO_A)],
    )
    store = await target(make_store)
    other = await target(make_store)
    await run_import(store, go_source)
    seal = store._seal
    raced = False

    async def seal_after_a_concurrent_update(token: str, *args: Any) -> str:
        nonlocal raced
        if token == "tk_race" and not raced:
            raced = True
            await other.update_token("tk_race", "written meanwhile", PW_A)
        return await seal(token, *args)

    monkeypatch.setattr(store, "_seal", seal_after_a_concurrent_update)
    assert await store.upgrade_format(PW_A) == 1
    assert raced
    assert await store.read_token("tk_race", PW_A) == "written meanwhile"
    assert await store.read_token("tk_calm", PW_A) == "hello"


async def test_missing_extra_clear_error(
    make_store: MakeStore, go_source: GoSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    await insert_go_rows(
        go_source.url, go_source.vault, [go_row("7400", "tk_one", HELLO_A)]
    )
    store = await target(make_store)
    await run_import(store, go_source)
    ours = await store.create_token("our value", PW_A)
    monkeypatch.setitem(sys.modules, "argon2", None)
    with pytest.raises(
        GoSupportMissingError, match=r"pip install 'vaultstore_async\[go\]'"
    ):
        await store.read_token("tk_one", PW_A)
    with pytest.raises(GoSupportMissingError):
        await store.upgrade_format(PW_A)
    assert await store.read_token(ours, PW_A) == "our value"


async def test_source_checks_name_the_argument(
    make_store: MakeStore, go_source: GoSource
) -> None:
    store = await target(make_store)
    with pytest.raises(ValidationError, match="source_table 'missing_table' does not"):
        await store.import_go(go_source.url, source_table="missing_table")
    with pytest.raises(ValidationError, match="source_table must be a plain SQL"):
        await store.import_go(go_source.url, source_table="vault; DROP")
    with pytest.raises(ValidationError, match="own table"):
        await store.import_go(go_source.url, source_table=store.table_name)
    with pytest.raises(ValidationError, match="dry_run must be a bool"):
        await store.import_go(go_source.url, source_table=go_source.vault, dry_run=1)
    with pytest.raises(ValidationError, match="progress must be callable"):
        await store.import_go(go_source.url, source_table=go_source.vault, progress=3)


async def test_source_without_meta_table(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await insert_go_rows(
        go_source.url, go_source.vault, [go_row("7500", "tk_one", HELLO_A)]
    )
    store = await target(make_store)
    report = await store.import_go(
        go_source.url, source_table=go_source.vault, source_meta_table="no_such_meta"
    )
    assert (report.imported, report.settings_imported) == (1, 0)


async def test_many_rows_import_in_pages(
    make_store: MakeStore, go_source: GoSource
) -> None:
    rows = [go_row(f"8{n:05d}", f"tk_bulk_{n:05d}", HELLO_A) for n in range(1203)]
    async with databases.Database(go_source.url) as db:
        await db.execute_many(
            f"INSERT INTO {go_source.vault} (id, vault_token, vault_value, created_at,"
            " updated_at, expires_at, soft_deleted_at) VALUES (:id, :vault_token,"
            " :vault_value, :created_at, :updated_at, :expires_at, :soft_deleted_at)",
            rows,
        )
    store = await target(make_store)
    calls: list[tuple[int, int]] = []
    report = await run_import(
        store, go_source, progress=lambda d, t: calls.append((d, t))
    )
    assert report.imported == 1203
    assert calls[-1] == (1203, 1203)
    assert len(calls) == 3
    assert await store.count_records() == 1203


async def test_import_go_across_backends(
    tmp_path: Path, go_source: GoSource, table_names: dict[str, str]
) -> None:
    # From this backend's Go table into a SQLite file.
    await insert_go_rows(
        go_source.url, go_source.vault, [go_row("7600", "tk_x", HELLO_A)]
    )
    await insert_go_setting(go_source.url, go_source.meta, "owner", "ops")
    target_url = backend_url("sqlite", tmp_path / "other")
    (tmp_path / "other").mkdir()
    dry = await import_go(
        go_source.url,
        target_url,
        source_table=go_source.vault,
        source_meta_table=go_source.meta,
        dry_run=True,
        **table_names,
    )
    assert (dry.imported, dry.settings_imported) == (1, 1)
    assert not (tmp_path / "other" / "vault.db").exists() or not await _has_table(
        target_url, table_names["table_name"]
    )

    report = await import_go(
        go_source.url,
        target_url,
        source_table=go_source.vault,
        source_meta_table=go_source.meta,
        **table_names,
    )
    assert report.imported == 1
    async with AsyncStore(target_url, kdf=FAST_KDF, **table_names) as store:
        assert await store.read_token("tk_x", PW_A) == "hello"
        assert await store.get_setting("owner") == "ops"
    await drop_tables(target_url, table_names)


async def _has_table(url: str, name: str) -> bool:
    async with databases.Database(url) as db:
        row = await db.fetch_one(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :n",
            {"n": name},
        )
    return row is not None


async def _go_execute(source: GoSource, sql: str, values: dict[str, Any]) -> None:
    async with databases.Database(source.url) as db:
        await db.execute(sql.replace("{vault}", source.vault), values)


async def test_second_import_carries_go_changes(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await insert_go_rows(
        go_source.url,
        go_source.vault,
        [
            go_row("9000", "tk_gone", HELLO_A),
            go_row("9001", "tk_sooner", HELLO_A, expires_at=_future(30)),
            go_row("9002", "tk_later", HELLO_A, expires_at=_future(2)),
            go_row("9003", "tk_new_value", HELLO_A),
            go_row("9004", "tk_both", HELLO_A, updated_at=PAST),
            go_row("9005", "tk_restored_here", HELLO_A),
        ],
    )
    store = await target(make_store)
    await run_import(store, go_source)
    await store.update_token("tk_both", "written here", PW_A)
    await store.soft_delete_token("tk_restored_here")
    await store.restore_token("tk_restored_here")

    # Changes made in Go after the first import.
    update = "UPDATE {vault} SET %s WHERE vault_token = :token"
    await _go_execute(
        go_source, update % "soft_deleted_at = :t", {"t": PAST, "token": "tk_gone"}
    )
    await _go_execute(
        go_source,
        update % "expires_at = :t",
        {"t": _future(1), "token": "tk_sooner"},
    )
    await _go_execute(
        go_source,
        update % "expires_at = :t",
        {"t": _future(90), "token": "tk_later"},
    )
    other = _first(PW_B, "v2")
    await _go_execute(
        go_source,
        update % "vault_value = :v",
        {"v": other, "token": "tk_new_value"},
    )
    await _go_execute(
        go_source,
        update % "vault_value = :v, updated_at = :t",
        {"v": other, "t": _future(1), "token": "tk_both"},
    )

    report = await run_import(store, go_source)
    assert report.imported == 0
    assert report.updated == 3
    assert report.skipped == 2
    assert [(r.source, r.reason) for r in report.rejected] == [
        ("row 9004", "the value changed in the source and here since the import")
    ]
    with pytest.raises(TokenNotFoundError):
        await store.read_token("tk_gone", PW_A)
    sooner = await store.find_record_by_token("tk_sooner")
    assert sooner is not None
    assert sooner.expires_at is not None
    assert sooner.expires_at < datetime.now(UTC) + timedelta(days=2)
    # An extension made in Go is not carried: expiry only moves earlier.
    later = await store.find_record_by_token("tk_later")
    assert later is not None
    assert later.expires_at is not None
    assert later.expires_at < datetime.now(UTC) + timedelta(days=3)
    assert await store.read_token("tk_new_value", PW_B) == "hello"
    assert await store.read_token("tk_both", PW_A) == "written here"
    assert await store.read_token("tk_restored_here", PW_A) == "hello"


async def test_text_compare_hides_rows(
    make_store: MakeStore, go_source: GoSource, backend: str
) -> None:
    if backend == "mysql":
        pytest.skip("MariaDB's Go table has DATETIME columns, compared as times")
    soon = datetime.now(UTC) + timedelta(hours=1)
    offset = soon.astimezone(timezone(timedelta(hours=-5)))
    await insert_go_rows(
        go_source.url,
        go_source.vault,
        [
            go_row("9100", "tk_space", HELLO_A, soft_deleted_at=" " + SENTINEL),
            go_row(
                "9101",
                "tk_offset",
                HELLO_A,
                # Parses as an hour from now, but as text it sorts before
                # now, so Go hid the row.
                soft_deleted_at=offset.strftime("%Y-%m-%d %H:%M:%S-05:00"),
            ),
            go_row(
                "9102", "tk_rfc3339", HELLO_A, soft_deleted_at="9999-12-31T23:59:59Z"
            ),
        ],
    )
    store = await target(make_store)
    await run_import(store, go_source)
    for token in ("tk_space", "tk_offset"):
        with pytest.raises(TokenNotFoundError):
            await store.read_token(token, PW_A)
    assert await store.read_token("tk_rfc3339", PW_A) == "hello"


async def test_rows_without_id_all_counted(
    make_store: MakeStore, go_source: GoSource, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("only SQLite lets a Go table's primary key hold NULL")
    async with databases.Database(go_source.url) as db:
        await db.execute(f"DROP TABLE {go_source.vault}")
        await db.execute(
            f"CREATE TABLE {go_source.vault} (id TEXT PRIMARY KEY,"
            " vault_token TEXT, vault_value TEXT, created_at TEXT,"
            " updated_at TEXT, expires_at TEXT, soft_deleted_at TEXT)"
        )
    await insert_go_rows(
        go_source.url,
        go_source.vault,
        [go_row(None, None, HELLO_A) for _ in range(501)]  # type: ignore[arg-type]
        + [go_row(None, f"tk_noid_{n}", HELLO_A) for n in range(502)]
        + [go_row("1", "tk_with_id", HELLO_A)],
    )
    store = await target(make_store)
    report = await run_import(store, go_source)
    assert report.examined == 1004
    assert report.imported == 503
    assert report.rows_rejected == 501
    assert await store.read_token("tk_noid_501", PW_A) == "hello"
    again = await run_import(store, go_source)
    assert again.skipped == 503

    # Rows without an id are matched by token, even after re-encryption.
    assert await store.upgrade_format(PW_A) == 503
    async with databases.Database(go_source.url) as db:
        await db.execute(
            f"UPDATE {go_source.vault} SET soft_deleted_at = :t"
            " WHERE vault_token = 'tk_noid_7'",
            {"t": PAST},
        )
    third = await run_import(store, go_source)
    assert third.updated == 1
    assert third.rows_rejected == 501
    with pytest.raises(TokenNotFoundError):
        await store.read_token("tk_noid_7", PW_A)


async def test_empty_presets_turn_go_reads_off(
    make_store: MakeStore, go_source: GoSource
) -> None:
    # After the move, a writer to the database who has one legacy value and
    # its plaintext could forge legacy values, so go_presets=() reads none.
    await insert_go_rows(
        go_source.url,
        go_source.vault,
        [go_row("9200", "tk_legacy", HELLO_LEGACY), go_row("9201", "tk_v2", HELLO_A)],
    )
    store = await target(make_store, go_presets=())
    await run_import(store, go_source)
    for token in ("tk_legacy", "tk_v2"):
        with pytest.raises(DecryptionError):
            await store.read_token(token, PW_A)
    with pytest.raises(ValidationError, match="go_presets is empty"):
        await store.upgrade_format(PW_A)


async def test_oversize_first_setting_rejects_key(
    make_store: MakeStore, go_source: GoSource
) -> None:
    # MariaDB's TEXT column cannot hold 1 MiB, and PostgreSQL's cannot hold
    # NUL, so each gets a first value that the target cannot take.
    too_big = "x" * (2**20 + 1)
    bad = "a\x00b" if go_source.url.startswith("mysql") else too_big
    await insert_go_setting(go_source.url, go_source.meta, "api_url", bad)
    await insert_go_setting(go_source.url, go_source.meta, "api_url", "stale")
    store = await target(make_store)
    report = await run_import(store, go_source)
    assert [r.source for r in report.rejected] == ["setting 'api_url'"]
    assert await store.get_setting("api_url") is None


async def test_upgraded_rows_still_track_go(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await insert_go_rows(
        go_source.url,
        go_source.vault,
        [
            go_row("9300", "tk_value", HELLO_A),
            go_row("9301", "tk_deleted_in_go", HELLO_A),
            go_row("9302", "tk_renewed_in_go", HELLO_A, expires_at=_future(5)),
            go_row("9303", "tk_deleted_here", HELLO_A),
        ],
    )
    store = await target(make_store)
    await run_import(store, go_source)
    assert await store.upgrade_format(PW_A) == 4
    await store.delete_token("tk_deleted_here")

    update = "UPDATE {vault} SET %s WHERE vault_token = :token"
    await _go_execute(
        go_source,
        update % "vault_value = :v, updated_at = :t",
        {"v": _first(PW_B, "v2"), "t": _future(1), "token": "tk_value"},
    )
    await _go_execute(
        go_source,
        update % "soft_deleted_at = :t, updated_at = :u",
        {"t": PAST, "u": _future(1), "token": "tk_deleted_in_go"},
    )
    await _go_execute(
        go_source,
        update % "expires_at = :t, updated_at = :u",
        {"t": _future(50), "u": _future(1), "token": "tk_renewed_in_go"},
    )

    report = await run_import(store, go_source)
    assert report.imported == 0
    assert report.updated == 1
    assert report.skipped == 2
    assert [(r.source, r.reason) for r in report.rejected] == [
        ("row 9300", "the value changed in the source and here since the import")
    ]
    # The upgraded value stays; the Go change is reported, not lost silently.
    assert await store.read_token("tk_value", PW_A) == "hello"
    with pytest.raises(TokenNotFoundError):
        await store.read_token("tk_deleted_in_go", PW_A)
    assert await store.read_token("tk_renewed_in_go", PW_A) == "hello"
    # A token deleted here is not brought back by the next import.
    assert not await store.token_exists("tk_deleted_here")


async def test_second_source_cannot_overwrite(
    make_store: MakeStore, go_source: GoSource, db_url: str
) -> None:
    # Go allows any custom token, so two Go services may share one.
    other_vault, other_meta = go_table_names()
    await create_go_tables(db_url, other_vault, other_meta)
    try:
        await insert_go_rows(
            db_url, go_source.vault, [go_row("1001", "db_pw", HELLO_A)]
        )
        await insert_go_rows(
            db_url,
            other_vault,
            [go_row("2001", "db_pw", _first(PW_B, "v2"), soft_deleted_at=PAST)],
        )
        store = await target(make_store)
        await run_import(store, go_source)
        second = await store.import_go(db_url, source_table=other_vault)
        assert [(r.source, r.reason) for r in second.rejected] == [
            ("row 2001", "the target already has the token")
        ]
        assert second.updated == 0
        assert await store.read_token("db_pw", PW_A) == "hello"
    finally:
        await drop_go_tables(db_url, other_vault, other_meta)


async def test_dropped_ledger_still_applies_deletions(
    make_store: MakeStore, go_source: GoSource
) -> None:
    await insert_go_rows(
        go_source.url,
        go_source.vault,
        [go_row("9400", "tk_a", HELLO_A), go_row("9401", "tk_b", HELLO_A)],
    )
    store = await target(make_store)
    await run_import(store, go_source)
    assert await store.upgrade_format(PW_A) == 2
    async with databases.Database(go_source.url) as db:
        await db.execute(f"DROP TABLE {store.table_name}_go_ledger")
    await _go_execute(
        go_source,
        "UPDATE {vault} SET soft_deleted_at = :t WHERE vault_token = :token",
        {"t": PAST, "token": "tk_a"},
    )
    report = await run_import(store, go_source)
    assert report.rejected == []
    assert (report.updated, report.skipped) == (1, 1)
    with pytest.raises(TokenNotFoundError):
        await store.read_token("tk_a", PW_A)
    assert await store.read_token("tk_b", PW_A) == "hello"
    again = await run_import(store, go_source)
    assert (again.updated, again.skipped, again.rejected) == (0, 2, [])


async def test_large_values_split_statements(
    make_store: MakeStore, go_source: GoSource
) -> None:
    # 20 MiB of stored values in one page: more than MariaDB's default
    # 16 MiB packet, so the insert must be split.
    big = [
        "v2:" + base64.urlsafe_b64encode(os.urandom(1_500_000)).decode("ascii")
        for _ in range(10)
    ]
    await insert_go_rows(
        go_source.url,
        go_source.vault,
        [go_row(f"95{n:02d}", f"tk_big_{n}", value) for n, value in enumerate(big)],
    )
    store = await target(make_store)
    report = await run_import(store, go_source)
    assert report.imported == 10
    for n, value in enumerate(big):
        assert (
            await stored_value(go_source.url, store.table_name, f"tk_big_{n}") == value
        )

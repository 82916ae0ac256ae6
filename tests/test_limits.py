"""Read-cost limits, name clashes, URL secrets and SQLite connection caps."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST_KDF, PASSWORD, MakeStore

from vaultstore_async import (
    AsyncStore,
    DecryptionError,
    KdfProfile,
    RecordQuery,
    ValidationError,
)

COSTLY = KdfProfile(opslimit=9, memlimit=8 * 1024)


async def test_costly_row_rejected_by_default(make_store: MakeStore) -> None:
    writer = await make_store(kdf=COSTLY)
    token = await writer.create_token("v", PASSWORD)
    reader = await make_store(kdf=FAST_KDF)
    with pytest.raises(DecryptionError):
        await reader.read_token(token, PASSWORD)


async def test_max_read_kdf_admits_costly_row(make_store: MakeStore) -> None:
    writer = await make_store(kdf=COSTLY)
    token = await writer.create_token("v", PASSWORD)
    reader = await make_store(kdf=FAST_KDF, max_read_kdf=COSTLY)
    assert await reader.read_token(token, PASSWORD) == "v"


def test_max_read_kdf_type_checked(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="max_read_kdf"):
        AsyncStore(f"sqlite:///{tmp_path / 'v.db'}", max_read_kdf="sensitive")


def test_meta_name_clash_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="meta_table_name"):
        AsyncStore(
            f"sqlite:///{tmp_path / 'v.db'}",
            table_name="vault",
            meta_table_name="vault_migrations",
        )


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
def test_durations_must_be_finite(tmp_path: Path, value: float) -> None:
    with pytest.raises(ValidationError, match="key_cache_ttl"):
        AsyncStore(f"sqlite:///{tmp_path / 'v.db'}", key_cache_ttl=value)


def test_url_query_hidden_in_repr() -> None:
    store = AsyncStore("postgresql://user@127.0.0.1:5432/test?password=hunter2secret")
    assert "hunter2secret" not in repr(store)


async def test_sqlite_many_tasks_share_cap(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    async with AsyncStore(url, kdf=FAST_KDF, key_reuse_writes=1000) as store:
        tokens = await asyncio.gather(
            *(store.create_token(str(i), PASSWORD) for i in range(400))
        )
        found = await asyncio.gather(*(store.token_exists(t) for t in tokens))
        assert all(found)
        assert await store.count_records(RecordQuery()) == 400


async def test_missing_sqlite_folder_message(tmp_path: Path) -> None:
    store = AsyncStore(f"sqlite:///{tmp_path / 'absent' / 'v.db'}", kdf=FAST_KDF)
    with pytest.raises(Exception, match="folder") as error:
        await store.connect()
    assert "does not exist" in str(error.value)


def test_cli_unwritable_output_stores_nothing(tmp_path: Path) -> None:
    source = tmp_path / "app.env"
    source.write_text("KEY=value\n", encoding="utf-8")
    db = tmp_path / "v.db"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vaultstore_async",
            "import-env",
            f"sqlite:///{db}",
            str(source),
            "--password-env",
            "PW",
            "--output",
            str(tmp_path / "absent" / "out.tokens"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PW": PASSWORD},
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 2
    assert "out.tokens" in run.stderr
    assert not db.exists()


async def test_wrong_password_update_one_derivation(make_store: MakeStore) -> None:
    store = await make_store(key_cache_size=0)
    token = await store.create_token("v", PASSWORD)
    before = store.stats()["key_derivations"]
    with pytest.raises(DecryptionError):
        await store.update_token(token, "w", "a wrong but long password")
    assert store.stats()["key_derivations"] - before == 1


def test_cli_failed_import_keeps_tokens_file(tmp_path: Path) -> None:
    source = tmp_path / "app.env"
    source.write_text("KEY=value\n", encoding="utf-8")
    output = tmp_path / "app.tokens"
    output.write_text("KEY=tk_from_an_earlier_run\n", encoding="utf-8")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vaultstore_async",
            "import-env",
            f"sqlite:///{tmp_path / 'absent' / 'v.db'}",
            str(source),
            "--password-env",
            "PW",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PW": PASSWORD},
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 1
    assert output.read_text(encoding="utf-8") == "KEY=tk_from_an_earlier_run\n"

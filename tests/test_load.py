"""Several OS processes on one database: mixed load, simultaneous
connect, password change beside a writer, and SQLite's write lock.

The workers live in tests/_workers.py and run as separate interpreters,
each with a store of its own on the FAST_KDF profile. Each one writes a
JSON log of its outcomes, which these tests check against the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import databases
import pytest
from _workers import documented_errors, open_stored, run_workers
from conftest import FAST_KDF, OTHER_PASSWORD, PASSWORD

from vaultstore_async import AsyncStore, DecryptionError, Record, RecordQuery
from vaultstore_async._migrations import Names

pytestmark = pytest.mark.slow

ALL_ROWS = RecordQuery(include_soft_deleted=True)
MIXED_PROCESSES = 4
MIXED_OPS = 250
SHARED_TOKENS = 8
CONNECT_PROCESSES = 8
REKEY_ROWS = 600
REKEY_PAGE_PAUSE = 0.2
SQLITE_PROCESSES = 4
SQLITE_OPS = 60
SQLITE_LOCK_SECONDS = 2.0


def worker_config(url: str, names: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "url": url,
        "kdf": [FAST_KDF.opslimit, FAST_KDF.memlimit],
        "password": PASSWORD,
        **names,
        **extra,
    }


def mixed_configs(
    url: str, names: dict[str, str], shared: list[str], processes: int, ops: int
) -> list[dict[str, Any]]:
    return [
        worker_config(
            url, names, worker=worker, seed=worker, ops=ops, shared_tokens=shared
        )
        for worker in range(processes)
    ]


async def all_records(store: AsyncStore) -> dict[str, Record]:
    return {record.token: record for record in await store.list_records(ALL_ROWS)}


def opening_passwords(record: Record, passwords: list[str]) -> list[str]:
    opened = []
    for password in passwords:
        try:
            open_stored(record.value, record.token, password)
        except DecryptionError:
            continue
        opened.append(password)
    return opened


# Checks of the mixed-load logs


def undocumented(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    allowed = documented_errors()
    return [e for e in entries if not e["ok"] and e["error"] not in allowed]


def unexpected(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Outcomes that differ from what the worker knew in advance.

    Calls on a worker's own tokens have one right outcome. On the shared
    tokens a read must succeed and an update may lose a compare-and-set
    race often enough to give up with BackendError.
    """
    wrong = []
    for entry in entries:
        expect = entry.get("expect")
        if entry.get("own", True):
            outcome = "ok" if entry["ok"] else entry["error"]
            if outcome != (expect or "ok"):
                wrong.append(entry)
        elif not entry["ok"] and not (
            entry["op"] == "update" and entry["error"] == "BackendError"
        ):
            wrong.append(entry)
    return wrong


def wrong_reads(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for e in entries
        if e["op"] == "read" and "expected_value" in e and e["ok"]
        if e["value"] != e["expected_value"]
    ]


def final_states(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Replay one worker's successful calls on its own tokens, in order."""
    states: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not entry["ok"] or not entry.get("own", True):
            continue
        token = entry.get("token")
        op = entry["op"]
        if op in ("create", "create_custom"):
            states[token] = {
                "value": entry["value"],
                "live": True,
                "expires": entry["expires"],
            }
        elif op == "update":
            states[token]["value"] = entry["value"]
        elif op == "soft_delete":
            states[token]["live"] = False
        elif op == "restore":
            states[token]["live"] = True
        elif op == "renew":
            states[token]["expires"] = entry["expires"]
    return states


def expiry_text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


async def test_mixed_load_four_processes(
    db_url: str, table_names: dict[str, str], make_store, tmp_path: Path
) -> None:
    store = await make_store()
    shared = [f"shared-{index}" for index in range(SHARED_TOKENS)]
    for token in shared:
        await store.create_custom_token(token, f"initial {token}", PASSWORD)
    configs = mixed_configs(db_url, table_names, shared, MIXED_PROCESSES, MIXED_OPS)

    jobs = [("mixed", config) for config in configs]
    logs = await asyncio.to_thread(run_workers, jobs, tmp_path / "workers")

    entries = [entry for log in logs for entry in log]
    assert len(entries) == MIXED_PROCESSES * MIXED_OPS
    assert undocumented(entries) == []
    assert unexpected(entries) == []
    assert wrong_reads(entries) == []
    created = [
        e["token"] for e in entries if e["op"] in ("create", "create_custom") if e["ok"]
    ]
    duplicates = [token for token, count in Counter(created).items() if count > 1]
    assert duplicates == []

    records = await all_records(store)
    assert len(records) == len(shared) + len(created)
    lost = sorted(set(created) - set(records))
    assert lost == []
    expected: dict[str, dict[str, Any]] = {}
    for log in logs:
        expected.update(final_states(log))
    wrong_values = [
        token
        for token, state in expected.items()
        if open_stored(records[token].value, token, PASSWORD) != state["value"]
    ]
    assert wrong_values == []
    wrong_live = [
        token
        for token, state in expected.items()
        if (records[token].soft_deleted_at is None) != state["live"]
    ]
    assert wrong_live == []
    wrong_expiry = [
        token
        for token, state in expected.items()
        if expiry_text(records[token].expires_at) != state["expires"]
    ]
    assert wrong_expiry == []

    written: dict[str, set[str]] = {token: {f"initial {token}"} for token in shared}
    for entry in entries:
        if entry["op"] == "update" and not entry["own"] and entry["ok"]:
            written[entry["token"]].add(entry["value"])
    stray = [
        token
        for token in shared
        if open_stored(records[token].value, token, PASSWORD) not in written[token]
    ]
    assert stray == []


def migrations_table(names: dict[str, str]) -> str:
    return Names(vault=names["table_name"], meta=names["meta_table_name"]).migrations


async def migration_rows(url: str, names: dict[str, str]) -> list[int]:
    table = migrations_table(names)
    async with databases.Database(url) as db:
        rows = await db.fetch_all(f"SELECT version FROM {table}")
    return sorted(int(row._mapping["version"]) for row in rows)


async def test_connect_eight_processes(
    db_url: str, table_names: dict[str, str], make_store, tmp_path: Path
) -> None:
    configs = [worker_config(db_url, table_names) for _ in range(CONNECT_PROCESSES)]

    jobs = [("connect", config) for config in configs]
    logs = await asyncio.to_thread(run_workers, jobs, tmp_path / "workers")

    entries = [log[0] for log in logs]
    failed = [entry for entry in entries if not entry["ok"]]
    assert failed == []
    assert [entry["version"] for entry in entries] == [1] * CONNECT_PROCESSES
    appliers = [
        index
        for index, entry in enumerate(entries)
        if any(line["message"].startswith("applied schema") for line in entry["logs"])
    ]
    assert len(appliers) == 1
    warnings = [
        line["message"]
        for entry in entries
        for line in entry["logs"]
        if line["level"] != "INFO" and "below the OWASP minimum" not in line["message"]
    ]
    assert warnings == []
    assert await migration_rows(db_url, table_names) == [1]
    store = await make_store(automigrate=False)
    assert await store.schema_version() == 1


async def test_change_password_beside_writer(
    db_url: str, table_names: dict[str, str], make_store, tmp_path: Path
) -> None:
    store = await make_store(key_reuse_writes=REKEY_ROWS)
    seeded: dict[str, str] = {}

    async def seed(start: int) -> None:
        for index in range(start, REKEY_ROWS, 4):
            value = f"seed {index}"
            seeded[await store.create_token(value, PASSWORD)] = value

    await asyncio.gather(*(seed(start) for start in range(4)))
    common = {
        "done": str(tmp_path / "rekey.done"),
        "warm": str(tmp_path / "warm"),
        "page_pause": REKEY_PAGE_PAUSE,
    }
    jobs = [
        (
            "rekey",
            worker_config(db_url, table_names, new_password=OTHER_PASSWORD, **common),
        ),
        (
            "writer",
            worker_config(db_url, table_names, seed=7, tokens=sorted(seeded), **common),
        ),
    ]

    rekey_log, writer_log = await asyncio.to_thread(
        run_workers, jobs, tmp_path / "workers"
    )

    change = rekey_log[0]
    assert change["ok"], change
    during = [
        e for e in writer_log if change["t0"] < e["t1"] and e["t0"] < change["t1"]
    ]
    assert during, "the writer made no call while the password change ran"
    failed_creates = [e for e in writer_log if e["op"] == "create" and not e["ok"]]
    assert failed_creates == []
    bad_updates = [
        e
        for e in writer_log
        if e["op"] == "update" and not e["ok"] and e["error"] != "DecryptionError"
    ]
    assert bad_updates == []

    expected = dict(seeded)
    for entry in writer_log:
        if entry["ok"]:
            expected[entry["token"]] = entry["value"]
    records = await all_records(store)
    assert sorted(records) == sorted(expected)
    both = [PASSWORD, OTHER_PASSWORD]
    opened = {token: opening_passwords(r, both) for token, r in records.items()}
    not_exactly_one = [token for token, found in opened.items() if len(found) != 1]
    assert not_exactly_one == []
    lost_updates = [
        token
        for token, record in records.items()
        if open_stored(record.value, token, opened[token][0]) != expected[token]
    ]
    assert lost_updates == []

    still_old = [token for token, found in opened.items() if found == [PASSWORD]]
    assert await store.change_password(PASSWORD, OTHER_PASSWORD) == len(still_old)
    records = await all_records(store)
    after = {token: opening_passwords(r, both) for token, r in records.items()}
    not_new = [token for token, found in after.items() if found != [OTHER_PASSWORD]]
    assert not_new == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_writers_wait_for_lock(
    db_url: str, table_names: dict[str, str], make_store, tmp_path: Path
) -> None:
    store = await make_store()
    shared = ["shared-0"]
    await store.create_custom_token("shared-0", "initial shared-0", PASSWORD)
    path = db_url.removeprefix("sqlite:///")
    configs = mixed_configs(db_url, table_names, shared, SQLITE_PROCESSES, SQLITE_OPS)
    jobs = [("mixed", config) for config in configs]
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    release: dict[str, float] = {}

    def hold_lock() -> None:
        time.sleep(SQLITE_LOCK_SECONDS)
        holder.execute("COMMIT")
        release["at"] = time.time()

    releaser = threading.Thread(target=hold_lock)

    def take_lock() -> None:
        holder.execute("BEGIN IMMEDIATE")
        releaser.start()

    try:
        assert holder.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        logs = await asyncio.to_thread(
            run_workers, jobs, tmp_path / "workers", on_ready=take_lock
        )
    finally:
        if releaser.is_alive():
            releaser.join()
        holder.close()

    entries = [entry for log in logs for entry in log]
    locked = [e for e in entries if "locked" in e.get("message", "")]
    assert locked == []
    assert unexpected(entries) == []
    writes = [e for e in entries if e["op"] != "read"]
    waited = [e for e in writes if e["t0"] < release["at"] < e["t1"]]
    assert waited, "no write was waiting on the lock when it was released"
    created = [
        e["token"] for e in entries if e["op"] in ("create", "create_custom") if e["ok"]
    ]
    assert await store.count_records(ALL_ROWS) == len(shared) + len(created)

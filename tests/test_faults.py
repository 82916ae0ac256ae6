"""Faults: connections killed part way, tasks cancelled at every await
point, and stored values corrupted behind the store's back.

Killed connections are the store's own only. On PostgreSQL the store's
connections carry an application_name of their own. On MariaDB the store
works in a database created for the test, so PROCESSLIST's DB column
identifies its connections among everyone else's.

Stopping and starting a server is in test_restart.py, which runs only when
the servers may be disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import databases
import pytest
import pytest_asyncio
from _workers import open_stored, subprocess_env
from conftest import FAST_KDF, OTHER_PASSWORD, PASSWORD, drop_tables

from vaultstore_async import (
    AsyncStore,
    BackendError,
    DecryptionError,
    RecordQuery,
    _envelope,
)
from vaultstore_async._batch import CHANGE_PAGE

ALL_ROWS = RecordQuery(include_soft_deleted=True)
SERVERS = ["postgresql", "mysql"]
WAIT_SECONDS = 20.0
SETTLE_SECONDS = 3.0
CLOSE_SECONDS = 5.0
MAX_STEPS = 400
SPIN_LIMIT = 200_000
PAGE = CHANGE_PAGE
SQLITE_WORKER_THREAD = "_connection_worker_thread"
# InnoDB refreshes the INNODB_TRX table only after 0.1 s without a read of
# it, so a poll must wait longer than that to see fresh rows.
INNODB_CACHE_SECONDS = 0.12


class Watch:
    """A store's database plus an observer of that store's connections."""

    def __init__(self, backend: str, url: str, names: dict[str, str]) -> None:
        self.backend = backend
        self.base_url = url
        self.names = names
        self.tag = f"vsf_{secrets.token_hex(6)}"
        self.url = url
        self.admin: databases.Database | None = None
        self.stores: list[AsyncStore] = []

    @property
    def table(self) -> str:
        """The vault table's name for raw SQL on the admin connection."""
        if self.backend == "mysql":
            return f"{self.tag}.{self.names['table_name']}"
        return self.names["table_name"]

    async def setup(self) -> None:
        if self.backend == "sqlite":
            return
        self.admin = databases.Database(self.base_url)
        await self.admin.connect()
        if self.backend == "mysql":
            await self.admin.execute(f"CREATE DATABASE {self.tag}")
            self.url = f"{self.base_url.rsplit('/', 1)[0]}/{self.tag}"

    async def teardown(self) -> None:
        for store in self.stores:
            # A hung close is reported by the test that calls close_in_time.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(store.close(), CLOSE_SECONDS)
        if self.backend == "mysql":
            assert self.admin is not None
            await self.admin.execute(f"DROP DATABASE IF EXISTS {self.tag}")
        else:
            await drop_tables(self.url, self.names)
        if self.admin is not None:
            await self.admin.disconnect()

    async def open_store(self, **options: Any) -> AsyncStore:
        if self.backend == "postgresql":
            options["database_options"] = {
                "server_settings": {"application_name": self.tag}
            }
        store = AsyncStore(self.url, kdf=FAST_KDF, **self.names, **options)
        await store.connect()
        self.stores.append(store)
        return store

    async def _rows(self, sql: str, values: dict[str, Any] | None = None) -> list[Any]:
        assert self.admin is not None
        rows = await self.admin.fetch_all(sql, values)
        return [row._mapping for row in rows]

    async def connection_count(self) -> int:
        """Open connections of the store (SQLite: aiosqlite worker threads)."""
        if self.backend == "sqlite":
            return sum(
                SQLITE_WORKER_THREAD in thread.name for thread in threading.enumerate()
            )
        return len(await self.connection_ids())

    async def connection_ids(self) -> list[int]:
        if self.backend == "postgresql":
            rows = await self._rows(
                "SELECT pid FROM pg_stat_activity WHERE application_name = :tag",
                {"tag": self.tag},
            )
            return [int(row["pid"]) for row in rows]
        rows = await self._rows(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :tag",
            {"tag": self.tag},
        )
        return [int(row["ID"]) for row in rows]

    async def still_open(self, ids: list[int]) -> int:
        """Count how many of the connections `ids` the server still has."""
        return len(set(ids) & set(await self.connection_ids()))

    async def open_transactions(self) -> int:
        if self.backend == "sqlite":
            return await asyncio.to_thread(self._sqlite_locked)
        if self.backend == "postgresql":
            rows = await self._rows(
                "SELECT pid FROM pg_stat_activity WHERE application_name = :tag"
                " AND (state LIKE 'idle in transaction%' OR xact_start IS NOT NULL)",
                {"tag": self.tag},
            )
            return len(rows)
        await asyncio.sleep(INNODB_CACHE_SECONDS)
        rows = await self._rows(
            "SELECT t.trx_id FROM information_schema.INNODB_TRX t"
            " JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id"
            " WHERE p.DB = :tag",
            {"tag": self.tag},
        )
        return len(rows)

    def _sqlite_locked(self) -> int:
        path = self.url.removeprefix("sqlite:///")
        probe = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError:
            return 1
        finally:
            probe.close()
        return 0

    async def waiting_ids(self) -> list[int]:
        """Connections of the store that wait for a row lock."""
        if self.backend == "postgresql":
            rows = await self._rows(
                "SELECT pid FROM pg_stat_activity WHERE application_name = :tag"
                " AND wait_event_type = 'Lock'",
                {"tag": self.tag},
            )
            return [int(row["pid"]) for row in rows]
        rows = await self._rows(
            "SELECT p.ID FROM information_schema.INNODB_TRX t"
            " JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id"
            " WHERE p.DB = :tag AND t.trx_state = 'LOCK WAIT'",
            {"tag": self.tag},
        )
        return [int(row["ID"]) for row in rows]

    async def kill(self, ids: list[int]) -> None:
        assert self.admin is not None
        for connection_id in ids:
            if self.backend == "postgresql":
                await self.admin.fetch_one(
                    "SELECT pg_terminate_backend(:pid)", {"pid": connection_id}
                )
            else:
                await self.admin.execute(f"KILL CONNECTION {int(connection_id)}")

    async def kill_when_waiting(self) -> list[int]:
        """Kill the store's connections as soon as one waits for a lock."""
        interval = INNODB_CACHE_SECONDS if self.backend == "mysql" else 0.01
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while loop.time() < deadline:
            ids = await self.waiting_ids()
            if ids:
                await self.kill(ids)
                return ids
            await asyncio.sleep(interval)
        return []

    async def close_in_time(self, store: AsyncStore) -> bool:
        """Close the store; return whether close() returned in CLOSE_SECONDS."""
        try:
            await asyncio.wait_for(store.close(), CLOSE_SECONDS)
        except TimeoutError:
            return False
        return True

    async def settled(self, probe: Callable[[], Awaitable[int]], limit: int) -> int:
        """Poll `probe` until it returns at most `limit`; return its last value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_SECONDS
        value = await probe()
        while value > limit and loop.time() < deadline:
            await asyncio.sleep(0.05)
            value = await probe()
        return value

    @asynccontextmanager
    async def holding(self, sql: str, values: dict[str, Any]) -> AsyncIterator[None]:
        """Run `sql` in a transaction on a connection of its own and keep the
        transaction (and its locks) open for the block; roll back after."""
        async with databases.Database(self.base_url) as db:
            transaction = db.transaction()
            await transaction.start()
            try:
                await db.execute(sql, values)
                yield
            finally:
                await transaction.rollback()


@pytest_asyncio.fixture
async def watch(backend: str, db_url: str, table_names: dict[str, str]):
    watched = Watch(backend, db_url, table_names)
    await watched.setup()
    try:
        yield watched
    finally:
        await watched.teardown()


async def raw_values(watch: Watch) -> dict[str, str]:
    """Return {token: stored text} of every row, read without the store."""
    async with databases.Database(watch.url) as db:
        rows = await db.fetch_all(
            f"SELECT vault_token, vault_value FROM {watch.names['table_name']}"
        )
    return {row._mapping["vault_token"]: row._mapping["vault_value"] for row in rows}


def opening(stored: dict[str, str], passwords: list[str]) -> dict[str, list[str]]:
    """Map each token to the passwords (of `passwords`) that open its value."""
    result: dict[str, list[str]] = {}
    for token, value in stored.items():
        result[token] = []
        for password in passwords:
            try:
                open_stored(value, token, password)
            except DecryptionError:
                continue
            result[token].append(password)
    return result


async def seed(store: AsyncStore, count: int) -> dict[str, str]:
    """Create `count` tokens from four coroutines; return {token: value}."""
    created: dict[str, str] = {}

    async def work(start: int) -> None:
        for index in range(start, count, 4):
            value = f"value {index}"
            created[await store.create_token(value, PASSWORD)] = value

    await asyncio.gather(*(work(start) for start in range(4)))
    return created


# Connections killed part way


@pytest.mark.parametrize("backend", SERVERS)
async def test_kill_during_password_change(watch: Watch) -> None:
    store = await watch.open_store(key_reuse_writes=1000)
    values = await seed(store, PAGE + 200)
    last_id = max(record.id for record in await store.list_records(ALL_ROWS))
    lock = f"SELECT id FROM {watch.table} WHERE id = :id FOR UPDATE"

    async with watch.holding(lock, {"id": last_id}):
        change = asyncio.create_task(store.change_password(PASSWORD, OTHER_PASSWORD))
        killed = await watch.kill_when_waiting()
        with pytest.raises(BackendError):
            await asyncio.wait_for(change, WAIT_SECONDS)

    assert killed, "the password change never waited on the locked row"
    stored = await raw_values(watch)
    assert len(stored) == PAGE + 200
    opened = opening(stored, [PASSWORD, OTHER_PASSWORD])
    assert [t for t, found in opened.items() if len(found) != 1] == []
    rekeyed = [t for t, found in opened.items() if found == [OTHER_PASSWORD]]
    assert len(rekeyed) == PAGE
    changed_values = [
        t for t in stored if open_stored(stored[t], t, opened[t][0]) != values[t]
    ]
    assert changed_values == []
    assert await store.change_password(PASSWORD, OTHER_PASSWORD) == 200
    opened = opening(await raw_values(watch), [PASSWORD, OTHER_PASSWORD])
    assert [t for t, found in opened.items() if found != [OTHER_PASSWORD]] == []
    assert await watch.close_in_time(store), "close() hung"
    assert await watch.settled(watch.connection_count, 0) == 0


@pytest.mark.parametrize("backend", SERVERS)
async def test_kill_during_custom_create(watch: Watch) -> None:
    store = await watch.open_store()
    insert = (
        f"INSERT INTO {watch.table} (id, vault_token, vault_value, created_at,"
        " updated_at) VALUES (:id, :token, 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )

    async with watch.holding(insert, {"id": "locker", "token": "contested"}):
        create = asyncio.create_task(
            store.create_custom_token("contested", "mine", PASSWORD)
        )
        killed = await watch.kill_when_waiting()
        with pytest.raises(BackendError):
            await asyncio.wait_for(create, WAIT_SECONDS)

    assert killed, "the insert never waited on the uncommitted duplicate"
    assert await raw_values(watch) == {}
    await store.create_custom_token("contested", "mine", PASSWORD)
    assert await store.read_token("contested", PASSWORD) == "mine"
    assert await watch.close_in_time(store), "close() hung"
    assert await watch.settled(watch.connection_count, 0) == 0


@pytest.mark.parametrize("backend", SERVERS)
async def test_kill_during_update(watch: Watch) -> None:
    store = await watch.open_store()
    token = await store.create_token("old value", PASSWORD)
    lock = f"SELECT id FROM {watch.table} WHERE vault_token = :token FOR UPDATE"

    async with watch.holding(lock, {"token": token}):
        update = asyncio.create_task(store.update_token(token, "new value", PASSWORD))
        killed = await watch.kill_when_waiting()
        with pytest.raises(BackendError):
            await asyncio.wait_for(update, WAIT_SECONDS)

    assert killed, "the update never waited on the locked row"
    assert await store.read_token(token, PASSWORD) == "old value"
    await store.update_token(token, "new value", PASSWORD)
    assert await store.read_token(token, PASSWORD) == "new value"
    assert await watch.close_in_time(store), "close() hung"
    assert await watch.settled(watch.connection_count, 0) == 0


@pytest.mark.parametrize("backend", SERVERS)
async def test_kill_idle_connections(watch: Watch) -> None:
    store = await watch.open_store()
    token = await store.create_token("survives", PASSWORD)
    ids = await watch.connection_ids()
    await watch.kill(ids)
    assert await watch.settled(lambda: watch.still_open(ids), 0) == 0

    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(await store.read_token(token, PASSWORD))
        except BackendError:
            outcomes.append("BackendError")

    assert ids, "the store had no connection to kill"
    assert outcomes[0] in ("survives", "BackendError")
    assert outcomes[1:] == ["survives", "survives"]
    assert await watch.close_in_time(store), "close() hung"
    assert await watch.settled(watch.connection_count, 0) == 0


# Cancellation at every await point


def suspension_point(task: asyncio.Task[Any]) -> tuple[Any, ...]:
    """Where `task` is suspended: the chain of awaiting frames, ending with
    the identity of the innermost awaitable so two awaits on one line differ."""
    chain: list[Any] = []
    awaitable: Any = task.get_coro()
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(
            awaitable, "ag_frame", None
        )
        if frame is None:
            chain.append((type(awaitable).__name__, id(awaitable)))
            break
        chain.append((frame.f_code.co_qualname, frame.f_lineno))
        awaitable = getattr(awaitable, "cr_await", None) or getattr(
            awaitable, "ag_await", None
        )
    return tuple(chain)


async def cancel_at_step(call: Callable[[], Awaitable[Any]], step: int) -> bool:
    """Run `call` and cancel it when it reaches its `step`-th suspension
    point (0: before it starts); return True when it finished first."""
    task = asyncio.ensure_future(call())
    seen = 0
    last: tuple[Any, ...] | None = None
    cancelled = False
    for _ in range(SPIN_LIMIT):
        if task.done():
            break
        position = suspension_point(task)
        if position != last:
            seen += 1
            last = position
            if seen > step:
                cancelled = task.cancel()
                break
        await asyncio.sleep(0)
    try:
        await asyncio.wait_for(task, WAIT_SECONDS)
    except asyncio.CancelledError:
        return False
    assert not cancelled, f"step {step}: the call swallowed its cancellation"
    return True


class CancelCase:
    """One operation to cancel, with the consistency check after each try."""

    def __init__(self, store: AsyncStore, watch: Watch) -> None:
        self.store = store
        self.watch = watch
        self.values: dict[str, str] = {}
        self.step = 0

    async def prepare(self) -> None:
        pass

    def call(self) -> Awaitable[Any]:
        raise NotImplementedError

    async def problems(self) -> list[str]:
        raise NotImplementedError


class CreateCase(CancelCase):
    def call(self) -> Awaitable[Any]:
        return self.store.create_token(f"created at step {self.step}", PASSWORD)

    async def problems(self) -> list[str]:
        stored = await raw_values(self.watch)
        new = sorted(set(stored) - set(self.values))
        found = []
        if len(new) > 1:
            found.append(f"step {self.step}: {len(new)} rows from one create")
        for token in new:
            expected = f"created at step {self.step}"
            if open_stored(stored[token], token, PASSWORD) != expected:
                found.append(f"step {self.step}: new row holds another value")
            self.values[token] = expected
        return found


class UpdateCase(CancelCase):
    async def prepare(self) -> None:
        self.token = await self.store.create_token("value 0", PASSWORD)
        self.current = "value 0"

    def call(self) -> Awaitable[Any]:
        return self.store.update_token(self.token, f"value {self.step + 1}", PASSWORD)

    async def problems(self) -> list[str]:
        stored = (await raw_values(self.watch))[self.token]
        try:
            value = open_stored(stored, self.token, PASSWORD)
        except DecryptionError:
            return [f"step {self.step}: value no longer opens"]
        if value not in (self.current, f"value {self.step + 1}"):
            return [f"step {self.step}: value is neither old nor new"]
        self.current = value
        return []


class ChangePasswordCase(CancelCase):
    async def prepare(self) -> None:
        for index in range(6):
            value = f"row {index}"
            self.values[await self.store.create_token(value, PASSWORD)] = value

    def call(self) -> Awaitable[Any]:
        return self.store.change_password(PASSWORD, OTHER_PASSWORD)

    async def problems(self) -> list[str]:
        stored = await raw_values(self.watch)
        opened = opening(stored, [PASSWORD, OTHER_PASSWORD])
        found = [
            f"step {self.step}: a row opens under {len(passwords)} passwords"
            for passwords in opened.values()
            if len(passwords) != 1
        ]
        for token, passwords in opened.items():
            if (
                passwords
                and open_stored(stored[token], token, passwords[0])
                != (self.values[token])
            ):
                found.append(f"step {self.step}: a row changed its value")
        # Undo whatever part ran, so each step starts from the old password.
        await self.store.change_password(OTHER_PASSWORD, PASSWORD)
        return found


CASES = {
    "create": CreateCase,
    "update": UpdateCase,
    "change_password": ChangePasswordCase,
}


@pytest.mark.parametrize("operation", sorted(CASES))
async def test_cancel_every_step(watch: Watch, operation: str) -> None:
    store = await watch.open_store()
    case = CASES[operation](store, watch)
    await case.prepare()
    problems: list[str] = []
    open_after: list[int] = []
    busy_after: list[int] = []
    finished = False

    for step in range(MAX_STEPS):
        case.step = step
        finished = await cancel_at_step(case.call, step)
        open_after.append(await watch.settled(watch.open_transactions, 0))
        if watch.backend == "sqlite":
            busy_after.append(await watch.settled(watch.connection_count, 0))
        problems.extend(await case.problems())
        if finished:
            break

    assert finished, f"{operation} still had suspension points after {MAX_STEPS}"
    assert problems == []
    assert [count for count in open_after if count] == []
    assert [count for count in busy_after if count] == []
    assert await watch.close_in_time(store), "close() hung"
    assert await watch.settled(watch.connection_count, 0) == 0


# Corrupted stored values


def replace_field(stored: str, index: int, text: str) -> str:
    fields = stored.split(":")
    fields[index] = text
    return ":".join(fields)


def flip_char(text: str, position: int) -> str:
    swapped = "B" if text[position] != "B" else "C"
    return text[:position] + swapped + text[position + 1 :]


def corruptions(stored: str, other: str) -> dict[str, str]:
    """Altered versions of one valid stored value; `other` is a valid value
    of another token."""
    fields = stored.split(":")
    salt, box = fields[4], fields[5]
    return {
        "truncated half": stored[: len(stored) // 2],
        "truncated one char": stored[:-1],
        "garbage": "not a stored value",
        "empty": "",
        "version vs2": "vs2" + stored[3:],
        "version upper case": "VS1" + stored[3:],
        "algorithm argon2i": replace_field(stored, 1, "argon2i"),
        "opslimit raised": replace_field(stored, 2, str(int(fields[2]) + 1)),
        "opslimit leading zero": replace_field(stored, 2, "0" + fields[2]),
        "memlimit doubled": replace_field(stored, 3, str(int(fields[3]) * 2)),
        "salt char flipped": replace_field(stored, 4, flip_char(salt, 3)),
        "salt spare bits": replace_field(stored, 4, salt[:-1] + "B"),
        "salt with padding": replace_field(stored, 4, salt + "=="),
        "box char flipped": replace_field(stored, 5, flip_char(box, len(box) // 2)),
        "box tag cut": replace_field(stored, 5, box[:-4]),
        "extra field": stored + ":x",
        "trailing space": stored + " ",
        "trailing newline": stored + "\n",
        "value of another token": other,
    }


class Corrupted:
    def __init__(self, store: AsyncStore, good: list[str], bad: dict[str, str]):
        self.store = store
        self.good = good
        self.bad = bad  # kind -> token


@pytest_asyncio.fixture
async def corrupted(make_store, db_url: str, table_names: dict[str, str]) -> Corrupted:
    """A store with two intact rows and one row per kind of corruption."""
    store = await make_store()
    good = [await store.create_token(f"intact {n}", PASSWORD) for n in range(2)]
    sample = await store.create_token("sample", PASSWORD)
    records = {r.token: r.value for r in await store.list_records(ALL_ROWS)}
    kinds = corruptions(records[sample], records[good[0]])
    bad: dict[str, str] = {}
    table = table_names["table_name"]
    async with databases.Database(db_url) as db:
        for index, (kind, value) in enumerate(kinds.items()):
            token = f"corrupt-{index}"
            await store.create_custom_token(token, "secret", PASSWORD)
            await db.execute(
                f"UPDATE {table} SET vault_value = :value WHERE vault_token = :token",
                {"value": value, "token": token},
            )
            bad[kind] = token
    await store.delete_token(sample)
    return Corrupted(store, good, bad)


async def test_corrupt_value_read(corrupted: Corrupted) -> None:
    wrong = []
    for kind, token in corrupted.bad.items():
        try:
            await corrupted.store.read_token(token, PASSWORD)
        except DecryptionError:
            continue
        except Exception as exc:
            wrong.append(f"{kind}: {type(exc).__name__}")
        else:
            wrong.append(f"{kind}: read succeeded")
    assert wrong == []


async def test_corrupt_value_update(corrupted: Corrupted) -> None:
    wrong = []
    for kind, token in corrupted.bad.items():
        try:
            await corrupted.store.update_token(token, "replacement", PASSWORD)
        except DecryptionError:
            continue
        except Exception as exc:
            wrong.append(f"{kind}: {type(exc).__name__}")
        else:
            wrong.append(f"{kind}: update succeeded")
    assert wrong == []


async def test_corrupt_value_batch_read(corrupted: Corrupted) -> None:
    wrong = []
    for kind, token in corrupted.bad.items():
        try:
            await corrupted.store.read_tokens([*corrupted.good, token], PASSWORD)
        except DecryptionError:
            continue
        except Exception as exc:
            wrong.append(f"{kind}: {type(exc).__name__}")
        else:
            wrong.append(f"{kind}: batch read succeeded")
    assert wrong == []


async def test_corrupt_rows_skip_rekey(
    corrupted: Corrupted, db_url: str, table_names: dict[str, str]
) -> None:
    store = corrupted.store
    before = {r.token: r.value for r in await store.list_records(ALL_ROWS)}

    changed = await store.change_password(PASSWORD, OTHER_PASSWORD)

    after = {r.token: r.value for r in await store.list_records(ALL_ROWS)}
    assert changed == len(corrupted.good)
    altered = [k for k, t in corrupted.bad.items() if after[t] != before[t]]
    assert altered == []
    for index, token in enumerate(corrupted.good):
        assert await store.read_token(token, OTHER_PASSWORD) == f"intact {index}"


NOT_CANONICAL = [
    "truncated one char",
    "garbage",
    "empty",
    "version vs2",
    "version upper case",
    "algorithm argon2i",
    "opslimit leading zero",
    "salt spare bits",
    "salt with padding",
    "extra field",
    "trailing space",
    "trailing newline",
]


async def test_corrupt_value_not_parsed(corrupted: Corrupted) -> None:
    records = {r.token: r.value for r in await corrupted.store.list_records(ALL_ROWS)}
    parsed = []
    for kind in NOT_CANONICAL:
        try:
            _envelope.parse(records[corrupted.bad[kind]])
        except DecryptionError:
            continue
        parsed.append(kind)
    assert parsed == []


HOSTILE_READ = """
import asyncio, sys
from vaultstore_async import AsyncStore, DecryptionError, KdfProfile

async def main(url, table, meta, token, password):
    profile = KdfProfile.preset("insecure_fast_for_tests")
    store = AsyncStore(url, table_name=table, meta_table_name=meta, kdf=profile)
    async with store:
        try:
            await store.read_token(token, password)
        except DecryptionError:
            print("DecryptionError")
        else:
            print("opened")

asyncio.run(main(*sys.argv[1:]))
"""
HOSTILE_READ_SECONDS = 5.0


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_corrupt_opslimit_bounded(
    make_store, db_url: str, table_names: dict[str, str], tmp_path: Path
) -> None:
    """A row whose stored opslimit was raised to the parser's maximum fails
    fast instead of running Argon2id for hours in the shared KDF pool."""
    store = await make_store()
    token = await store.create_token("secret", PASSWORD)
    stored = (await store.list_records())[0].value
    hostile = replace_field(stored, 2, str(2**32 - 1))
    async with databases.Database(db_url) as db:
        await db.execute(
            f"UPDATE {table_names['table_name']} SET vault_value = :value",
            {"value": hostile},
        )
    arguments = [db_url, table_names["table_name"], table_names["meta_table_name"]]

    command = [sys.executable, "-c", HOSTILE_READ, *arguments, token, PASSWORD]

    output = await asyncio.to_thread(read_with_deadline, command, tmp_path)

    assert output is not None, (
        f"read_token of a row with opslimit 2**32-1 ran over {HOSTILE_READ_SECONDS} s"
    )
    assert output == "DecryptionError"


def read_with_deadline(command: list[str], folder: Path) -> str | None:
    """Run `command`; return its output, or None if it was killed at the deadline."""
    try:
        result = subprocess.run(
            command,
            cwd=folder,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=HOSTILE_READ_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return None
    return result.stdout.strip() or result.stderr

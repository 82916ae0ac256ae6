"""Benchmarks for vaultstore_async, each beside a raw-SQL baseline.

Every operation is timed through AsyncStore and, in the same process and
run, as the same SQL sent through `databases` with no cryptography. The
script prints Markdown tables and can write the figures as JSON:

    PYTHONPATH=. python -m benchmarks.run
    PYTHONPATH=. python -m benchmarks.run --url postgresql://postgres@127.0.0.1:5432/test
    PYTHONPATH=. python -m benchmarks.run --kdf insecure_fast_for_tests --quick
    PYTHONPATH=. python -m benchmarks.run --memory

Without --url it uses an SQLite file in a temporary folder. It creates
tables named vsb<8 hex digits>_* and drops them at the end. The figures are
what one run on one machine saw, and no timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import os
import platform
import secrets
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import databases
from nacl.pwhash import argon2id

from vaultstore_async import AsyncStore, KdfProfile

logger = logging.getLogger("benchmarks")

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different long password 42"
# Every token the benchmarks write stores this 64-character value.
VALUE = "s" * 64

# Writers of fixture rows reuse one salt for this many rows, so a table of
# 10,000 rows contains 10 distinct salts.
WRITER_REUSE = 1000
# key_reuse_writes of the store that runs change_password "with key reuse",
# so one salt can cover all 10,000 rows of a full run.
CHANGE_REUSE = 10_000
# Rows per page of the raw baseline, the same as CHANGE_PAGE in
# vaultstore_async/_batch.py, which pages change_password.
RAW_PAGE_ROWS = 500
# Bounds the raw baseline's paging loop at 10 million rows.
MAX_RAW_PAGES = 20_000
LAG_TIMER_SECONDS = 0.001
# Upper bound in seconds for any one timed loop, so a stuck backend cannot
# keep the script running for ever.
LOOP_TIME_LIMIT = 900.0
COPY_BATCH_ROWS = 5000
MIB = 1024 * 1024

VAULT_COLUMNS = (
    "id",
    "vault_token",
    "vault_value",
    "created_at",
    "updated_at",
    "expires_at",
    "soft_deleted_at",
)


@dataclass(frozen=True)
class Sizes:
    """Row and sample counts for one run."""

    single_ops: int
    warm_reads: int
    batch_tokens: int
    sweep_rows: int
    change_rows: int
    change_rows_no_reuse: int
    lag_reads: int
    repeats: int
    no_reuse_change_repeats: int
    memory_rows: int


FULL = Sizes(
    single_ops=32,
    warm_reads=2000,
    batch_tokens=100,
    sweep_rows=100_000,
    change_rows=10_000,
    change_rows_no_reuse=500,
    lag_reads=32,
    repeats=3,
    no_reuse_change_repeats=1,
    memory_rows=100_000,
)
QUICK = Sizes(
    single_ops=8,
    warm_reads=200,
    batch_tokens=100,
    sweep_rows=1_000,
    change_rows=1_000,
    change_rows_no_reuse=50,
    lag_reads=32,
    repeats=2,
    no_reuse_change_repeats=1,
    memory_rows=1_000,
)


# Statistics


def percentile(values: list[float], fraction: float) -> float:
    """Return the `fraction` quantile, interpolating between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def stats_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after}


def add_counts(total: dict[str, int], more: Mapping[str, int]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value


@dataclass
class Result:
    """Timings of one operation through the store and of its raw baseline.

    `samples` and `baseline` are seconds per operation; `counts` are the
    store's stats() counters summed over all the samples.
    """

    name: str
    section: str
    samples: list[float]
    counts: dict[str, int]
    baseline: list[float]
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def per_op(self, counter: str) -> float:
        return self.counts.get(counter, 0) / len(self.samples)

    @property
    def p50(self) -> float:
        return percentile(self.samples, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99)

    @property
    def ops_per_second(self) -> float:
        return len(self.samples) / sum(self.samples)

    @property
    def baseline_p50(self) -> float:
        return percentile(self.baseline, 0.5)

    @property
    def ratio(self) -> float:
        return self.p50 / self.baseline_p50

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "section": self.section,
            "samples": len(self.samples),
            "ops_per_second": self.ops_per_second,
            "p50_seconds": self.p50,
            "p99_seconds": self.p99,
            "key_derivations_per_op": self.per_op("key_derivations"),
            "statements_per_op": self.per_op("statements"),
            "rows_read_per_op": self.per_op("rows_read"),
            "rows_written_per_op": self.per_op("rows_written"),
            "baseline_samples": len(self.baseline),
            "baseline_p50_seconds": self.baseline_p50,
            "baseline_p99_seconds": percentile(self.baseline, 0.99),
            "ratio_p50": self.ratio,
            "note": self.note,
            **self.extra,
        }


@dataclass
class LagResult:
    """Delays of a 1 ms asyncio timer, pooled over all runs of one case."""

    name: str
    delays: list[float]
    runs: int
    wall_seconds: float
    derivations_per_read: float | None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "timer_samples": len(self.delays),
            "runs": self.runs,
            "p50_seconds": percentile(self.delays, 0.5),
            "p99_seconds": percentile(self.delays, 0.99),
            "max_seconds": max(self.delays, default=math.nan),
            "median_wall_seconds": self.wall_seconds,
            "key_derivations_per_read": self.derivations_per_read,
        }


@dataclass
class MemoryResult:
    """Memory growth of one call: Python allocations and process RSS."""

    name: str
    rows: int
    seconds: float
    traced_peak: int
    rss_growth: int | None
    changed_rows: int | None

    def summary(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Calibration:
    """Argon2id cost at the run's profile, measured without the store."""

    single_seconds: float
    parallel_seconds: float
    threads: int


@dataclass
class Target:
    """One performance goal, whether this run met it, and the figure."""

    goal: str
    verdict: str
    figure: str


# Database helpers


def dialect_name(url: str) -> str:
    return databases.DatabaseURL(url).dialect


def db_time(dialect: str, moment: datetime) -> Any:
    """Convert an aware time to the store's column format: ISO text on
    SQLite, timestamptz on PostgreSQL, naive UTC on MariaDB/MySQL."""
    utc = moment.astimezone(UTC)
    if dialect == "postgresql":
        return utc
    naive = utc.replace(tzinfo=None)
    if dialect == "sqlite":
        return naive.isoformat(sep=" ", timespec="microseconds")
    return naive


def driver_placeholders(dialect: str, count: int) -> str:
    if dialect == "postgresql":
        return ", ".join(f"${index}" for index in range(1, count + 1))
    if dialect == "mysql":
        return ", ".join(["%s"] * count)
    return ", ".join(["?"] * count)


async def server_version(db: databases.Database, dialect: str) -> str:
    if dialect == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    version = await db.fetch_val("SELECT VERSION()")
    return str(version).split(" on ")[0]


async def list_tables(db: databases.Database, dialect: str) -> list[str]:
    if dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    elif dialect == "postgresql":
        sql = (
            "SELECT tablename AS name FROM pg_tables"
            " WHERE schemaname = current_schema()"
        )
    else:
        sql = (
            "SELECT table_name AS name FROM information_schema.tables"
            " WHERE table_schema = DATABASE()"
        )
    rows = await db.fetch_all(sql)
    return [str(row[0]) for row in rows]


@dataclass
class Context:
    """Everything the benchmarks of one run share."""

    url: str
    dialect: str
    kdf: str
    sizes: Sizes
    prefix: str
    db: databases.Database
    pool_tokens: list[str] = field(default_factory=list)
    copies_made: int = 0

    def table(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    @asynccontextmanager
    async def store(
        self,
        name: str,
        database: databases.Database | None = None,
        **options: Any,
    ) -> AsyncIterator[AsyncStore]:
        """Open a store on this run's table `name`.

        Each store starts with an empty key cache, so its first read of
        each salt derives a key."""
        table = self.table(name)
        store = AsyncStore(
            database or self.url,
            table_name=table,
            meta_table_name=f"{table}_m",
            kdf=self.kdf,
            **options,
        )
        async with store:
            yield store

    def now(self) -> Any:
        return db_time(self.dialect, datetime.now(UTC))

    async def fetch_row(self, table: str, token: str) -> dict[str, Any]:
        row = await self.db.fetch_one(
            f"SELECT {', '.join(VAULT_COLUMNS)} FROM {table}"
            " WHERE vault_token = :token",
            {"token": token},
        )
        if row is None:
            raise LookupError(f"token {token!r} not found in table {table}")
        return dict(row._mapping)

    async def insert_copies(
        self, table: str, template: Mapping[str, Any], count: int
    ) -> list[str]:
        """Insert `count` rows shaped like `template` (value and times copied
        as the driver returned them) with new ids and tokens; return the
        tokens. Setup only: it uses the driver's executemany for speed."""
        first = self.copies_made
        self.copies_made += count
        rows = [
            (
                f"{index:032x}",
                f"tk_copy_{index:012d}",
                template["vault_value"],
                template["created_at"],
                template["updated_at"],
                template["expires_at"],
                template["soft_deleted_at"],
            )
            for index in range(first, first + count)
        ]
        sql = (
            f"INSERT INTO {table} ({', '.join(VAULT_COLUMNS)})"
            f" VALUES ({driver_placeholders(self.dialect, len(VAULT_COLUMNS))})"
        )
        async with self.db.connection() as connection, connection.transaction():
            raw = connection.raw_connection
            for start in range(0, count, COPY_BATCH_ROWS):
                batch = rows[start : start + COPY_BATCH_ROWS]
                if self.dialect == "mysql":
                    async with raw.cursor() as cursor:
                        await cursor.executemany(sql, batch)
                elif self.dialect == "postgresql":
                    await raw.executemany(sql, batch)
                else:
                    cursor = await raw.executemany(sql, batch)
                    await cursor.close()
        return [row[1] for row in rows]

    async def create_schema(self, name: str) -> None:
        async with self.store(name):
            pass  # connecting migrates, which creates the tables

    async def create_valid_rows(self, name: str, count: int) -> None:
        """Write `count` tokens under PASSWORD through the store, one salt
        per WRITER_REUSE rows, in transactions of 500 rows (setup only)."""
        logger.info("writing %d rows to %s", count, self.table(name))
        async with self.store(
            name, database=self.db, key_reuse_writes=WRITER_REUSE
        ) as writer:
            for start in range(0, count, 500):
                async with self.db.transaction():
                    for _ in range(min(500, count - start)):
                        await writer.create_token(VALUE, PASSWORD)

    async def count_salts(self, table: str) -> int:
        """Count distinct salts among stored values (field 5 of the
        `vs1:argon2id:<ops>:<mem>:<salt>:<box>` format)."""
        rows = await self.db.fetch_all(f"SELECT vault_value FROM {table}")
        return len({str(row[0]).split(":")[4] for row in rows})

    async def ensure_pool(self, count: int) -> list[str]:
        """Return `count` tokens of the shared table, each written without
        key reuse and so under a salt of its own; write the missing ones."""
        if len(self.pool_tokens) < count:
            async with self.store("pool") as writer:
                # Every write derives a key, so write one per core at once.
                while len(self.pool_tokens) < count:
                    batch = min(count - len(self.pool_tokens), available_cores())
                    self.pool_tokens += await asyncio.gather(
                        *(writer.create_token(VALUE, PASSWORD) for _ in range(batch))
                    )
        return self.pool_tokens[:count]

    async def drop_tables(self) -> list[str]:
        quote = "`" if self.dialect == "mysql" else '"'
        dropped = []
        for table in await list_tables(self.db, self.dialect):
            if table.startswith(f"{self.prefix}_"):
                await self.db.execute(f"DROP TABLE IF EXISTS {quote}{table}{quote}")
                dropped.append(table)
        return dropped


# Timing helpers

Call = Callable[[int], Awaitable[Any]]


async def time_calls(call: Call, count: int) -> list[float]:
    """Await call(0) .. call(count - 1) one after another; return seconds each."""
    samples: list[float] = []
    deadline = time.perf_counter() + LOOP_TIME_LIMIT
    for index in range(count):
        start = time.perf_counter()
        await call(index)
        samples.append(time.perf_counter() - start)
        if time.perf_counter() > deadline:
            logger.warning(
                "timed out after %d of %d calls (limit %.0f s)",
                index + 1,
                count,
                LOOP_TIME_LIMIT,
            )
            break
    return samples


async def time_interleaved(
    ours: Call, raw: Call, count: int, block: int = 10
) -> tuple[list[float], list[float]]:
    """Time `count` calls of each in alternating blocks of `block` calls,
    so that other load on the machine falls on both sides alike."""
    our_samples: list[float] = []
    raw_samples: list[float] = []
    for round_index in range(max(1, count // block)):
        if round_index % 2 == 0:
            our_samples += await time_calls(ours, block)
            raw_samples += await time_calls(raw, block)
        else:
            raw_samples += await time_calls(raw, block)
            our_samples += await time_calls(ours, block)
    return our_samples, raw_samples


async def time_one(operation: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    outcome = await operation()
    return time.perf_counter() - start, outcome


def alternate(round_index: int) -> bool:
    """True when the store goes first in this round."""
    return round_index % 2 == 0


# Raw-SQL baselines: the statements the store sends, without cryptography


def raw_select_sql(table: str) -> str:
    return (
        f"SELECT id, vault_value, expires_at FROM {table}"
        " WHERE vault_token = :token AND soft_deleted_at IS NULL"
    )


async def raw_insert(ctx: Context, table: str, value: str) -> None:
    now = ctx.now()
    await ctx.db.execute(
        f"INSERT INTO {table} ({', '.join(VAULT_COLUMNS)}) VALUES (:id, :token,"
        " :value, :now, :now, NULL, NULL)",
        {
            "id": f"{time.time_ns():016x}{secrets.token_hex(8)}",
            "token": f"tk_{secrets.token_hex(14)}",
            "value": value,
            "now": now,
        },
    )


async def raw_read_and_update(ctx: Context, table: str, token: str, value: str) -> None:
    row = await ctx.db.fetch_one(raw_select_sql(table), {"token": token})
    assert row is not None
    old = row._mapping["vault_value"]
    await ctx.db.execute(
        f"UPDATE {table} SET vault_value = :value, updated_at = :now"
        " WHERE id = :id AND vault_value = :old AND soft_deleted_at IS NULL",
        {"value": value, "now": ctx.now(), "id": row._mapping["id"], "old": old},
    )


def raw_soft_delete_sql(table: str) -> str:
    return (
        f"UPDATE {table} SET soft_deleted_at = :now, updated_at = :now"
        " WHERE expires_at IS NOT NULL AND expires_at <= :now"
        " AND soft_deleted_at IS NULL"
    )


def raw_delete_sql(table: str) -> str:
    return f"DELETE FROM {table} WHERE expires_at IS NOT NULL AND expires_at <= :now"


async def raw_change_pass(ctx: Context, table: str, values: tuple[str, str]) -> int:
    """Page through `table` by id and rewrite every value, one transaction
    per page, as change_password does but with no cryptography."""
    changed = 0
    last_id: str | None = None
    for _ in range(MAX_RAW_PAGES):
        where = "" if last_id is None else " WHERE id > :last_id"
        page = await ctx.db.fetch_all(
            f"SELECT id, vault_token, vault_value FROM {table}{where}"
            f" ORDER BY id LIMIT {RAW_PAGE_ROWS}",
            {} if last_id is None else {"last_id": last_id},
        )
        if not page:
            break
        now = ctx.now()
        async with ctx.db.transaction():
            for row in page:
                old = row._mapping["vault_value"]
                new = values[1] if old == values[0] else values[0]
                await ctx.db.execute(
                    f"UPDATE {table} SET vault_value = :new, updated_at = :now"
                    " WHERE id = :id AND vault_value = :old",
                    {"new": new, "now": now, "id": row._mapping["id"], "old": old},
                )
                changed += 1
        last_id = page[-1]._mapping["id"]
        if len(page) < RAW_PAGE_ROWS:
            break
    return changed


def same_length_values(value: str) -> tuple[str, str]:
    """Two strings of the stored value's length for raw rewrites."""
    return "a" * len(value), "b" * len(value)


# KDF calibration


def calibrate_kdf(kdf: str, threads: int, repeats: int) -> Calibration:
    """Time Argon2id directly with PyNaCl: one derivation at a time, then
    `threads` at once (each thread's share of the wall time)."""
    profile = KdfProfile.preset(kdf)

    def derive(index: int) -> None:
        argon2id.kdf(
            32,
            PASSWORD.encode(),
            index.to_bytes(argon2id.SALTBYTES, "big"),
            opslimit=profile.opslimit,
            memlimit=profile.memlimit,
        )

    single = []
    for index in range(repeats):
        start = time.perf_counter()
        derive(index)
        single.append(time.perf_counter() - start)
    jobs = threads * 4
    with ThreadPoolExecutor(max_workers=threads) as pool:
        start = time.perf_counter()
        list(pool.map(derive, range(jobs)))
        parallel = (time.perf_counter() - start) / jobs
    return Calibration(
        single_seconds=statistics.median(single),
        parallel_seconds=parallel,
        threads=threads,
    )


# Timed benchmarks


async def bench_create(ctx: Context) -> list[Result]:
    count = ctx.sizes.single_ops
    table = ctx.table("pool")
    results = []
    async with ctx.store("pool") as store:
        before = store.stats()

        async def create(_: int) -> None:
            ctx.pool_tokens.append(await store.create_token(VALUE, PASSWORD))

        samples = await time_calls(create, count)
        counts = stats_delta(before, store.stats())
    stored = (await ctx.fetch_row(table, ctx.pool_tokens[0]))["vault_value"]
    baseline = await time_calls(lambda _: raw_insert(ctx, table, stored), count)
    note = "raw: an INSERT of the same columns and value size"
    results.append(Result("create", "create", samples, counts, baseline, note=note))

    async with ctx.store("pool", key_reuse_writes=WRITER_REUSE) as store:
        before = store.stats()
        samples = await time_calls(lambda _: store.create_token(VALUE, PASSWORD), count)
        counts = stats_delta(before, store.stats())
    results.append(
        Result(
            "create, key reuse",
            "create",
            samples,
            counts,
            baseline,
            note=f"AsyncStore(key_reuse_writes={WRITER_REUSE}); same raw INSERT",
        )
    )
    return results


async def bench_cold_read(ctx: Context) -> list[Result]:
    count = ctx.sizes.single_ops
    tokens = await ctx.ensure_pool(count)
    table = ctx.table("pool")
    async with ctx.store("pool") as store:
        before = store.stats()
        samples = await time_calls(
            lambda index: store.read_token(tokens[index], PASSWORD), count
        )
        counts = stats_delta(before, store.stats())
    baseline = await time_calls(
        lambda index: ctx.db.fetch_one(raw_select_sql(table), {"token": tokens[index]}),
        count,
    )
    note = "new store, each token under its own salt; raw: the same SELECT"
    return [Result("cold read", "cold_read", samples, counts, baseline, note=note)]


async def bench_warm_read(ctx: Context) -> list[Result]:
    count = ctx.sizes.warm_reads
    token = (await ctx.ensure_pool(1))[0]
    sql = raw_select_sql(ctx.table("pool"))
    results = []

    async def measure(store: AsyncStore) -> tuple[list[float], dict, list[float]]:
        await store.read_token(token, PASSWORD)
        before = store.stats()
        samples, baseline = await time_interleaved(
            lambda _: store.read_token(token, PASSWORD),
            lambda _: ctx.db.fetch_one(sql, {"token": token}),
            count,
        )
        return samples, stats_delta(before, store.stats()), baseline

    async with ctx.store("pool") as store:
        samples, counts, baseline = await measure(store)
    note = "key in the store's cache; raw: the same SELECT, in alternating blocks"
    results.append(
        Result("warm read", "warm_read", samples, counts, baseline, note=note)
    )

    async with ctx.store("pool", database=ctx.db) as store, ctx.db.connection():
        samples, counts, baseline = await measure(store)
    note = (
        "store built on the baseline's databases.Database, one connection"
        " held by the task for both sides"
    )
    results.append(
        Result(
            "warm read, connection held",
            "warm_read",
            samples,
            counts,
            baseline,
            note=note,
        )
    )
    return results


async def read_batch(
    ctx: Context, name: str, tokens: list[str]
) -> tuple[list[float], dict[str, int], list[float]]:
    """Time read_tokens on a new store per run, and the raw IN query."""
    table = ctx.table(name)
    names = {f"t{index}": token for index, token in enumerate(tokens)}
    sql = (
        f"SELECT vault_token, vault_value, expires_at FROM {table}"
        f" WHERE vault_token IN ({', '.join(':' + key for key in names)})"
        " AND soft_deleted_at IS NULL"
    )
    samples: list[float] = []
    baseline: list[float] = []
    counts: dict[str, int] = {}
    for round_index in range(ctx.sizes.repeats):
        if not alternate(round_index):
            baseline.append((await time_one(lambda: ctx.db.fetch_all(sql, names)))[0])
        async with ctx.store(name) as store:
            before = store.stats()
            seconds, values = await time_one(
                lambda: store.read_tokens(tokens, PASSWORD)
            )
            samples.append(seconds)
            add_counts(counts, stats_delta(before, store.stats()))
        if len(values) != len(tokens):
            logger.warning("read_tokens returned %d of %d", len(values), len(tokens))
        if alternate(round_index):
            baseline.append((await time_one(lambda: ctx.db.fetch_all(sql, names)))[0])
    return samples, counts, baseline


async def bench_read_tokens(ctx: Context) -> list[Result]:
    count = ctx.sizes.batch_tokens
    async with ctx.store("batch", key_reuse_writes=WRITER_REUSE) as writer:
        shared_salt = [await writer.create_token(VALUE, PASSWORD) for _ in range(count)]
    samples, counts, baseline = await read_batch(ctx, "batch", shared_salt)
    results = [
        Result(
            f"read_tokens {count}, key reuse",
            "read_tokens",
            samples,
            counts,
            baseline,
            note=f"written by AsyncStore(key_reuse_writes={WRITER_REUSE}), so one"
            " salt; new store per call; raw: one SELECT ... IN of the tokens",
        )
    ]

    own_salts = await ctx.ensure_pool(count)
    # Calibrate again right before the reads: the goal compares with the
    # cost of one derivation, which drifts with the machine's load.
    calibration = calibrate_kdf(ctx.kdf, available_cores(), 5)
    samples, counts, baseline = await read_batch(ctx, "pool", own_salts)
    result = Result(
        f"read_tokens {count}, no key reuse",
        "read_tokens",
        samples,
        counts,
        baseline,
        note=f"{count} tokens, each under its own salt; new store per call",
    )
    derivations = result.per_op("key_derivations")
    result.extra["single_derivation_seconds"] = calibration.single_seconds
    result.extra["threads"] = calibration.threads
    result.extra["ideal_seconds"] = (
        derivations * calibration.single_seconds / calibration.threads
    )
    result.extra["raw_parallel_seconds"] = derivations * calibration.parallel_seconds
    results.append(result)
    return results


async def time_updates(
    ctx: Context, key_reuse_writes: int
) -> tuple[list[float], dict[str, int], str]:
    """Time update_token on one token; return seconds, counters and the token."""
    async with ctx.store("update", key_reuse_writes=key_reuse_writes) as store:
        token = await store.create_token(VALUE, PASSWORD)
        before = store.stats()
        samples = await time_calls(
            lambda _: store.update_token(token, VALUE, PASSWORD),
            ctx.sizes.single_ops,
        )
        return samples, stats_delta(before, store.stats()), token


async def bench_update(ctx: Context) -> list[Result]:
    table = ctx.table("update")
    samples, counts, token = await time_updates(ctx, 0)
    template = await ctx.fetch_row(table, token)
    raw_token = (await ctx.insert_copies(table, template, 1))[0]
    values = same_length_values(template["vault_value"])
    baseline = await time_calls(
        lambda index: raw_read_and_update(ctx, table, raw_token, values[index % 2]),
        ctx.sizes.single_ops,
    )
    note = "SELECT, open, seal, compare-and-set UPDATE; raw: the same SELECT and UPDATE"
    results = [Result("update", "update", samples, counts, baseline, note=note)]
    samples, counts, _ = await time_updates(ctx, WRITER_REUSE)
    note = f"AsyncStore(key_reuse_writes={WRITER_REUSE})"
    results.append(
        Result("update, key reuse", "update", samples, counts, baseline, note=note)
    )
    return results


async def expired_template(ctx: Context, name: str) -> dict[str, Any]:
    """Write one expired token through the store and return its row, then
    delete the row so the table holds only the copies made from it."""
    table = ctx.table(name)
    async with ctx.store(name) as store:
        token = await store.create_token(
            VALUE, PASSWORD, expires_at=datetime.now(UTC) - timedelta(days=1)
        )
    template = await ctx.fetch_row(table, token)
    await ctx.db.execute(f"DELETE FROM {table}")
    return template


async def bench_sweep(ctx: Context) -> list[Result]:
    rows = ctx.sizes.sweep_rows
    table = ctx.table("sweep")
    template = await expired_template(ctx, "sweep")
    ours: dict[str, list[float]] = {"soft": [], "delete": []}
    raw: dict[str, list[float]] = {"soft": [], "delete": []}
    counts: dict[str, dict[str, int]] = {"soft": {}, "delete": {}}
    swept: dict[str, list[int]] = {"soft": [], "delete": []}

    async def store_side() -> None:
        await ctx.insert_copies(table, template, rows)
        async with ctx.store("sweep") as store:
            for kind, sweep in (
                ("soft", store.soft_delete_expired_tokens),
                ("delete", store.delete_expired_tokens),
            ):
                before = store.stats()
                seconds, changed = await time_one(sweep)
                ours[kind].append(seconds)
                swept[kind].append(changed)
                add_counts(counts[kind], stats_delta(before, store.stats()))

    async def raw_side() -> None:
        await ctx.insert_copies(table, template, rows)
        for kind, sql in (
            ("soft", raw_soft_delete_sql(table)),
            ("delete", raw_delete_sql(table)),
        ):
            statement = partial(ctx.db.execute, sql, {"now": ctx.now()})
            seconds, _ = await time_one(statement)
            raw[kind].append(seconds)

    for round_index in range(ctx.sizes.repeats):
        sides = (
            (store_side, raw_side) if alternate(round_index) else (raw_side, store_side)
        )
        for side in sides:
            await side()
    return [
        Result(
            f"{operation} {rows:,} rows",
            "sweep",
            ours[kind],
            counts[kind],
            raw[kind],
            note=f"rows changed per call: {sorted(set(swept[kind]))};"
            " raw: the same statement through databases",
            extra={"rows": rows},
        )
        for kind, operation in (
            ("soft", "soft_delete_expired_tokens"),
            ("delete", "delete_expired_tokens"),
        )
    ]


async def time_change_password(
    ctx: Context, name: str, rows: int, repeats: int, key_reuse_writes: int
) -> tuple[list[float], dict[str, int], list[int]]:
    """Time change_password over `rows` fresh tokens, refilling table `name`
    before each call.

    Returns seconds per call, summed counters and the number of distinct
    salts found before each call."""
    table = ctx.table(name)
    samples: list[float] = []
    counts: dict[str, int] = {}
    salts: list[int] = []
    await ctx.create_schema(name)
    for _ in range(repeats):
        await ctx.db.execute(f"DELETE FROM {table}")
        await ctx.create_valid_rows(name, rows)
        salts.append(await ctx.count_salts(table))
        async with ctx.store(name, key_reuse_writes=key_reuse_writes) as store:
            before = store.stats()
            seconds, changed = await time_one(
                lambda store=store: store.change_password(PASSWORD, NEW_PASSWORD)
            )
            add_counts(counts, stats_delta(before, store.stats()))
        samples.append(seconds)
        if changed != rows:
            logger.warning("change_password changed %d of %d rows", changed, rows)
    return samples, counts, salts


async def time_raw_change(
    ctx: Context, name: str, rows: int, repeats: int
) -> list[float]:
    """Time the raw page-and-update baseline on a copy table of `rows` rows."""
    source = ctx.table(name)
    raw_name = f"{name}_raw"
    raw_table = ctx.table(raw_name)
    await ctx.create_schema(raw_name)
    template = await ctx.db.fetch_one(
        f"SELECT {', '.join(VAULT_COLUMNS)} FROM {source} LIMIT 1"
    )
    assert template is not None
    await ctx.insert_copies(raw_table, template._mapping, rows)
    values = same_length_values(template._mapping["vault_value"])
    samples = []
    for _ in range(repeats):
        seconds, _ = await time_one(lambda: raw_change_pass(ctx, raw_table, values))
        samples.append(seconds)
    return samples


async def bench_change_password(ctx: Context) -> list[Result]:
    rows = ctx.sizes.change_rows
    samples, counts, salts = await time_change_password(
        ctx, "change", rows, ctx.sizes.repeats, CHANGE_REUSE
    )
    baseline = await time_raw_change(ctx, "change", rows, ctx.sizes.repeats)
    results = [
        Result(
            f"change_password {rows:,} rows, key reuse",
            "change_password",
            samples,
            counts,
            baseline,
            note=f"AsyncStore(key_reuse_writes={CHANGE_REUSE}); rows written with"
            f" one salt per {WRITER_REUSE:,}; distinct salts before each call:"
            f" {salts}; raw: page by id, {RAW_PAGE_ROWS} rows a page, and UPDATE"
            " each row in one transaction per page",
            extra={"rows": rows, "distinct_salts": statistics.median(salts)},
        )
    ]

    rows = ctx.sizes.change_rows_no_reuse
    repeats = ctx.sizes.no_reuse_change_repeats
    samples, counts, salts = await time_change_password(
        ctx, "change_small", rows, repeats, 0
    )
    baseline = await time_raw_change(ctx, "change_small", rows, ctx.sizes.repeats)
    results.append(
        Result(
            f"change_password {rows:,} rows, no key reuse",
            "change_password",
            samples,
            counts,
            baseline,
            note=f"only {rows:,} rows, because every re-encrypted row costs a"
            f" derivation; rows written with one salt per {WRITER_REUSE:,}"
            f" (distinct salts: {salts}); AsyncStore(key_reuse_writes=0);"
            " raw: the same page-and-update",
            extra={"rows": rows, "distinct_salts": statistics.median(salts)},
        )
    )
    return results


async def sample_lag(stop: asyncio.Event, delays: list[float]) -> None:
    """Record how late a 1 ms asyncio.sleep wakes until `stop` is set."""
    deadline = time.perf_counter() + LOOP_TIME_LIMIT
    while not stop.is_set() and time.perf_counter() < deadline:
        start = time.perf_counter()
        await asyncio.sleep(LAG_TIMER_SECONDS)
        delays.append(time.perf_counter() - start - LAG_TIMER_SECONDS)


@asynccontextmanager
async def lag_sampler(delays: list[float]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(sample_lag(stop, delays))
    await asyncio.sleep(0)
    try:
        yield
    finally:
        stop.set()
        await task


async def bench_lag(ctx: Context) -> list[LagResult]:
    count = ctx.sizes.lag_reads
    tokens = await ctx.ensure_pool(count)
    sql = raw_select_sql(ctx.table("pool"))
    delays: list[float] = []
    walls: list[float] = []
    derivations = 0
    for _ in range(ctx.sizes.repeats):
        async with ctx.store("pool") as store:
            before = store.stats()
            async with lag_sampler(delays):
                seconds, _ = await time_one(
                    lambda store=store: asyncio.gather(
                        *(store.read_token(token, PASSWORD) for token in tokens)
                    )
                )
            derivations += stats_delta(before, store.stats())["key_derivations"]
        walls.append(seconds)
    ours = LagResult(
        f"{count} concurrent cold reads",
        delays,
        len(walls),
        statistics.median(walls),
        derivations / (count * len(walls)),
    )

    # The baseline runs rounds of the same raw SELECTs for as long as one
    # store run took, so both sides give the timer a similar number of ticks.
    raw_delays: list[float] = []
    raw_walls: list[float] = []
    for _ in range(ctx.sizes.repeats):
        async with lag_sampler(raw_delays):
            start = time.perf_counter()
            for _ in range(100_000):
                await asyncio.gather(
                    *(ctx.db.fetch_one(sql, {"token": token}) for token in tokens)
                )
                if time.perf_counter() - start >= ours.wall_seconds:
                    break
        raw_walls.append(time.perf_counter() - start)
    raw = LagResult(
        f"rounds of {count} concurrent raw SELECTs",
        raw_delays,
        len(raw_walls),
        statistics.median(raw_walls),
        None,
    )
    return [ours, raw]


# Memory mode


def proc_status_bytes(field_name: str) -> int | None:
    """Read a kB field such as VmRSS or VmHWM from /proc/self/status."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) * 1024
    return None


def reset_rss_peak() -> bool:
    """Reset VmHWM to the current RSS, which proc(5) documents since Linux
    4.0. Return False where that is not supported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def measure_memory(
    name: str,
    rows: int,
    operation: Callable[[], Awaitable[Any]],
    returns_row_count: bool = True,
) -> MemoryResult:
    gc.collect()
    peak_reset = reset_rss_peak()
    rss_before = proc_status_bytes("VmRSS")
    tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    seconds, changed = await time_one(operation)
    traced_peak = tracemalloc.get_traced_memory()[1] - traced_before
    tracemalloc.stop()
    rss_peak = proc_status_bytes("VmHWM") if peak_reset else None
    growth = None
    if rss_peak is not None and rss_before is not None:
        growth = rss_peak - rss_before
    changed_rows = int(changed) if returns_row_count else None
    return MemoryResult(name, rows, seconds, traced_peak, growth, changed_rows)


async def memory_sweep(ctx: Context) -> list[MemoryResult]:
    rows = ctx.sizes.memory_rows
    table = ctx.table("sweep")
    template = await expired_template(ctx, "sweep")
    results = []
    await ctx.insert_copies(table, template, rows)
    async with ctx.store("sweep") as store:
        results.append(
            await measure_memory(
                "soft_delete_expired_tokens", rows, store.soft_delete_expired_tokens
            )
        )
        results.append(
            await measure_memory(
                "delete_expired_tokens", rows, store.delete_expired_tokens
            )
        )
    await ctx.insert_copies(table, template, rows)
    for name, sql in (
        ("raw soft-delete UPDATE", raw_soft_delete_sql(table)),
        ("raw DELETE", raw_delete_sql(table)),
    ):
        statement = partial(ctx.db.execute, sql, {"now": ctx.now()})
        # databases.Database.execute returns no row count on PostgreSQL.
        results.append(await measure_memory(name, rows, statement, False))
    return results


async def memory_change_password(ctx: Context) -> list[MemoryResult]:
    rows = ctx.sizes.memory_rows
    table = ctx.table("change")
    await ctx.create_valid_rows("change", rows)
    results = []
    async with ctx.store("change", key_reuse_writes=CHANGE_REUSE) as store:
        results.append(
            await measure_memory(
                "change_password, key reuse",
                rows,
                lambda: store.change_password(PASSWORD, NEW_PASSWORD),
            )
        )
    stored = await ctx.db.fetch_val(f"SELECT vault_value FROM {table} LIMIT 1")
    values = same_length_values(str(stored))
    results.append(
        await measure_memory(
            "raw page-and-update", rows, lambda: raw_change_pass(ctx, table, values)
        )
    )
    return results


async def memory_kdf(ctx: Context) -> list[MemoryResult]:
    """Measure one Argon2id derivation alone, for reading the RSS column."""
    profile = KdfProfile.preset(ctx.kdf)

    async def derive() -> None:
        await asyncio.to_thread(
            argon2id.kdf,
            32,
            PASSWORD.encode(),
            bytes(argon2id.SALTBYTES),
            opslimit=profile.opslimit,
            memlimit=profile.memlimit,
        )

    name = "one Argon2id derivation, no store"
    return [await measure_memory(name, 0, derive, False)]


# Go VaultStore tables

GO_VECTORS = Path(__file__).resolve().parent.parent / "tests" / "data"
GO_PASSWORD = "pw-sixteen-chars"
GO_TIME = "2024-05-06 07:08:09"
GO_NEVER = "9999-12-31 23:59:59"


def go_values(preset: str) -> list[str]:
    """Return the Go library's own `v2:` values under GO_PASSWORD."""
    data = json.loads((GO_VECTORS / "go_vaultstore_vectors.json").read_text())
    return [
        str(vector["stored"])
        for vector in data["vectors"]
        if vector["preset"] == preset and vector["password"] == GO_PASSWORD
    ]


async def create_go_table(ctx: Context, name: str, rows: int) -> str:
    """Create a Go-shaped table of `rows` rows with text timestamps; return
    its name. Setup only."""
    table = ctx.table(name)
    await ctx.db.execute(
        f"CREATE TABLE {table} (id VARCHAR(40) NOT NULL PRIMARY KEY,"
        " vault_token VARCHAR(40) NOT NULL UNIQUE, vault_value TEXT NOT NULL,"
        " created_at VARCHAR(19), updated_at VARCHAR(19), expires_at VARCHAR(19),"
        " soft_deleted_at VARCHAR(19))"
    )
    value = go_values("default")[1]
    template = {
        "vault_value": value,
        "created_at": GO_TIME,
        "updated_at": GO_TIME,
        "expires_at": GO_NEVER,
        "soft_deleted_at": GO_NEVER,
    }
    await ctx.insert_copies(table, template, rows)
    return table


async def raw_copy(ctx: Context, source: str, target: str) -> int:
    """Copy the Go table page by page (500 rows by id) into a store table
    with one multi-row INSERT per page, converting the text times: what an
    import does without its checks and its ledger."""
    copied = 0
    last = ""
    for _ in range(MAX_RAW_PAGES):
        rows = await ctx.db.fetch_all(
            f"SELECT * FROM {source} WHERE id > :last ORDER BY id"
            f" LIMIT {RAW_PAGE_ROWS}",
            {"last": last},
        )
        if not rows:
            break
        values: dict[str, Any] = {}
        tuples = []
        for n, row in enumerate(rows):
            created = datetime.fromisoformat(str(row["created_at"]) + "+00:00")
            values[f"id{n}"] = row["id"]
            values[f"token{n}"] = row["vault_token"]
            values[f"value{n}"] = row["vault_value"]
            values[f"created{n}"] = db_time(ctx.dialect, created)
            tuples.append(
                f"(:id{n}, :token{n}, :value{n}, :created{n}, :created{n}, NULL, NULL)"
            )
        async with ctx.db.transaction():
            await ctx.db.execute(
                f"INSERT INTO {target} ({', '.join(VAULT_COLUMNS)}) VALUES "
                + ", ".join(tuples),
                values,
            )
        copied += len(rows)
        last = str(rows[-1]["id"])
    return copied


async def bench_go_import(ctx: Context) -> list[Result]:
    rows = ctx.sizes.change_rows
    source = await create_go_table(ctx, "gosrc", rows)
    ours: list[float] = []
    raw: list[float] = []
    counts: dict[str, int] = {}
    imported: list[int] = []
    for round_index in range(ctx.sizes.repeats):

        async def store_side(round_index: int = round_index) -> None:
            async with ctx.store(f"goimp{round_index}") as store:
                before = store.stats()
                call = partial(store.import_go, ctx.url, source_table=source)
                seconds, report = await time_one(call)
                ours.append(seconds)
                imported.append(report.imported)
                add_counts(counts, stats_delta(before, store.stats()))

        async def raw_side(round_index: int = round_index) -> None:
            name = f"goraw{round_index}"
            await ctx.create_schema(name)
            call = partial(raw_copy, ctx, source, ctx.table(name))
            seconds, _ = await time_one(call)
            raw.append(seconds)

        sides = (
            (store_side, raw_side) if alternate(round_index) else (raw_side, store_side)
        )
        for side in sides:
            await side()
    note = (
        f"rows imported per call: {sorted(set(imported))}; raw: page by id,"
        " one multi-row INSERT per page"
    )
    return [
        Result(
            f"import_go {rows:,} rows",
            "go_import",
            ours,
            counts,
            raw,
            note=note,
            extra={"rows": rows},
        )
    ]


async def bench_go_read(ctx: Context) -> list[Result]:
    count = ctx.sizes.single_ops
    values = go_values("default")
    source = ctx.table("goread")
    await ctx.db.execute(
        f"CREATE TABLE {source} (id VARCHAR(40) NOT NULL PRIMARY KEY,"
        " vault_token VARCHAR(40) NOT NULL UNIQUE, vault_value TEXT NOT NULL,"
        " created_at VARCHAR(19), updated_at VARCHAR(19), expires_at VARCHAR(19),"
        " soft_deleted_at VARCHAR(19))"
    )
    for index, value in enumerate(values):
        await ctx.db.execute(
            f"INSERT INTO {source} VALUES (:id, :token, :value, :t, :t, :never,"
            " :never)",
            {
                "id": f"{index:032d}",
                "token": f"tk_go_{index:02d}",
                "value": value,
                "t": GO_TIME,
                "never": GO_NEVER,
            },
        )
    results = []
    for presets in (("default",), ("lightweight", "default")):
        async with ctx.store("goread_dst", go_presets=presets) as store:
            await store.import_go(ctx.url, source_table=source)
            tokens = [f"tk_go_{index % len(values):02d}" for index in range(count)]

            async def cold_read(
                index: int, store: AsyncStore = store, tokens: list[str] = tokens
            ) -> str:
                # A cleared cache makes every read derive its key again.
                store.clear_key_cache()
                return await store.read_token(tokens[index], GO_PASSWORD)

            before = store.stats()
            samples = await time_calls(cold_read, count)
            counts = stats_delta(before, store.stats())
        baseline = await time_calls(
            lambda index, tokens=tokens: ctx.db.fetch_one(
                raw_select_sql(ctx.table("goread_dst")), {"token": tokens[index]}
            ),
            count,
        )
        label = ", ".join(presets)
        results.append(
            Result(
                f"cold read of a Go v2 value, go_presets=({label})",
                "go_read",
                samples,
                counts,
                baseline,
                note="Go default preset (3 passes, 64 MiB, 4 lanes), key cache"
                " cleared before each read; raw: the same SELECT",
            )
        )
    return results


TIMED_SECTIONS: dict[str, Callable[[Context], Awaitable[list[Any]]]] = {
    "create": bench_create,
    "cold_read": bench_cold_read,
    "warm_read": bench_warm_read,
    "read_tokens": bench_read_tokens,
    "update": bench_update,
    "sweep": bench_sweep,
    "change_password": bench_change_password,
    "lag": bench_lag,
    "go_import": bench_go_import,
    "go_read": bench_go_read,
}
MEMORY_SECTIONS: dict[str, Callable[[Context], Awaitable[list[Any]]]] = {
    "kdf": memory_kdf,
    "sweep": memory_sweep,
    "change_password": memory_change_password,
}


# Targets


def find(results: list[Result], name_start: str) -> Result | None:
    return next((r for r in results if r.name.startswith(name_start)), None)


def verdict(met: bool) -> str:
    return "met" if met else "missed"


def evaluate_targets(
    results: list[Result],
    lags: list[LagResult],
    memory: list[MemoryResult],
    sizes: Sizes,
) -> list[Target]:
    """Compare this run's figures with the performance goals."""
    targets: list[Target] = []
    missing = "not measured in this run"

    for name in ("warm read", "warm read, connection held"):
        warm = next((r for r in results if r.name == name), None)
        goal = f"{name}: p50 at most 1.2x the raw SELECT"
        if warm is None:
            targets.append(Target(goal, "-", missing))
        else:
            targets.append(
                Target(goal, verdict(warm.ratio <= 1.2), f"{warm.ratio:.3f}x")
            )

    batch = find(results, f"read_tokens {sizes.batch_tokens}, key reuse")
    goal = "read_tokens of 100 written with key reuse: at most 2 derivations"
    if batch is None:
        targets.append(Target(goal, "-", missing))
    else:
        derivations = batch.per_op("key_derivations")
        targets.append(
            Target(goal, verdict(derivations <= 2), f"{derivations:g} per call")
        )

    batch = find(results, f"read_tokens {sizes.batch_tokens}, no key reuse")
    goal = (
        "read_tokens of 100 without key reuse: p50 within 1.3x of"
        " derivations x one derivation / cores"
    )
    if batch is None or "ideal_seconds" not in batch.extra:
        targets.append(Target(goal, "-", missing))
    else:
        ideal = batch.extra["ideal_seconds"]
        parallel = batch.extra["raw_parallel_seconds"]
        targets.append(
            Target(
                goal,
                verdict(batch.p50 <= 1.3 * ideal),
                f"{format_ms(batch.p50)} ms = {batch.p50 / ideal:.2f}x of"
                f" {format_ms(ideal)} ms ({batch.per_op('key_derivations'):g} x"
                f" {format_ms(batch.extra['single_derivation_seconds'])} ms /"
                f" {batch.extra['threads']:g}); Argon2id alone in"
                f" {batch.extra['threads']:g} threads takes {format_ms(parallel)} ms"
                " for as many",
            )
        )

    for name in ("soft_delete_expired_tokens", "delete_expired_tokens"):
        sweep = find(results, name)
        goal = f"{name}: one statement, p50 under 2x the raw statement"
        if sweep is None:
            targets.append(Target(goal, "-", missing))
            continue
        statements = sweep.per_op("statements")
        targets.append(
            Target(
                goal,
                verdict(statements == 1 and sweep.ratio < 2),
                f"{statements:g} statement, {sweep.ratio:.3f}x"
                f" ({format_ms(sweep.p50)} ms vs {format_ms(sweep.baseline_p50)} ms,"
                f" {int(sweep.extra['rows']):,} rows)",
            )
        )

    change = next(
        (
            r
            for r in results
            if r.section == "change_password" and not r.name.endswith("no key reuse")
        ),
        None,
    )
    goal_derive = (
        "change_password with key reuse: at most 4 derivations plus one per"
        " distinct salt"
    )
    goal_time = "change_password with key reuse: p50 at most 3x the raw baseline"
    if change is None:
        targets.append(Target(goal_derive, "-", missing))
        targets.append(Target(goal_time, "-", missing))
    else:
        derivations = change.per_op("key_derivations")
        limit = 4 + change.extra["distinct_salts"]
        rows = int(change.extra["rows"])
        targets.append(
            Target(
                goal_derive,
                verdict(derivations <= limit),
                f"{derivations:g} per call vs limit {limit:g} ({rows:,} rows)",
            )
        )
        targets.append(
            Target(
                goal_time,
                verdict(change.ratio <= 3),
                f"{change.ratio:.3f}x ({format_ms(change.p50)} ms vs"
                f" {format_ms(change.baseline_p50)} ms)",
            )
        )

    goal = "event-loop lag p99 under 20 ms while derivations run"
    if not lags:
        targets.append(Target(goal, "-", missing))
    else:
        p99 = percentile(lags[0].delays, 0.99)
        targets.append(Target(goal, verdict(p99 < 0.020), f"{p99 * 1000:.2f} ms"))

    goal = "peak memory growth under 50 MB for 100,000 rows (tracemalloc)"
    store_memory = [m for m in memory if m.rows > 0 and not m.name.startswith("raw")]
    if not store_memory:
        targets.append(Target(goal, "-", "run with --memory"))
    else:
        worst = max(store_memory, key=lambda m: m.traced_peak)
        figure = f"{worst.traced_peak / MIB:.1f} MB at most ({worst.name})"
        if worst.rows < 100_000:
            figure += f"; only {worst.rows:,} rows"
        targets.append(Target(goal, verdict(worst.traced_peak < 50 * MIB), figure))
    return targets


# Output


def format_ms(seconds: float) -> str:
    milliseconds = seconds * 1000
    if math.isnan(milliseconds):
        return "-"
    if milliseconds >= 100:
        return f"{milliseconds:,.0f}"
    if milliseconds >= 10:
        return f"{milliseconds:.1f}"
    if milliseconds >= 1:
        return f"{milliseconds:.2f}"
    return f"{milliseconds:.3f}"


def format_ratio(ratio: float) -> str:
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x"


def format_count(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.2f}"


def markdown_table(
    headers: list[str], rows: list[list[str]], text_columns: int = 1
) -> str:
    """Format a Markdown table: the first `text_columns` columns are
    left-aligned, the rest right-aligned."""
    widths = [
        max(len(headers[column]), *(len(row[column]) for row in rows))
        for column in range(len(headers))
    ]
    align = ["---"] * text_columns + ["--:"] * (len(headers) - text_columns)

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if index < text_columns else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    lines = [
        line(headers),
        line([a.rjust(w, "-") for a, w in zip(align, widths, strict=True)]),
    ]
    lines += [line(row) for row in rows]
    return "\n".join(lines)


def results_table(results: list[Result]) -> str:
    headers = [
        "operation",
        "n",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "KDF/op",
        "SQL/op",
        "raw p50 ms",
        "ratio",
    ]
    rows = [
        [
            result.name,
            str(len(result.samples)),
            format_count(result.ops_per_second),
            format_ms(result.p50),
            format_ms(result.p99),
            format_count(result.per_op("key_derivations")),
            format_count(result.per_op("statements")),
            format_ms(result.baseline_p50),
            format_ratio(result.ratio),
        ]
        for result in results
    ]
    return markdown_table(headers, rows)


def lag_table(lags: list[LagResult]) -> str:
    headers = [
        "while running",
        "runs",
        "timer ticks",
        "p50 ms",
        "p99 ms",
        "max ms",
        "wall s",
    ]
    rows = [
        [
            lag.name,
            str(lag.runs),
            str(len(lag.delays)),
            format_ms(percentile(lag.delays, 0.5)),
            format_ms(percentile(lag.delays, 0.99)),
            format_ms(max(lag.delays, default=math.nan)),
            f"{lag.wall_seconds:.2f}",
        ]
        for lag in lags
    ]
    return markdown_table(headers, rows)


def memory_table(memory: list[MemoryResult]) -> str:
    headers = [
        "operation",
        "rows",
        "rows changed",
        "seconds",
        "tracemalloc peak MB",
        "RSS growth MB",
    ]
    rows = [
        [
            item.name,
            f"{item.rows:,}" if item.rows else "-",
            "-" if item.changed_rows is None else f"{item.changed_rows:,}",
            f"{item.seconds:.2f}",
            f"{item.traced_peak / MIB:.1f}",
            "-" if item.rss_growth is None else f"{item.rss_growth / MIB:.1f}",
        ]
        for item in memory
    ]
    return markdown_table(headers, rows)


def targets_table(targets: list[Target]) -> str:
    return markdown_table(
        ["goal", "verdict", "figure"],
        [[target.goal, target.verdict, target.figure] for target in targets],
        text_columns=3,
    )


def package_revision() -> str:
    """Return the git commit of the package, marked when it has local edits."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "vaultstore_async"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    return (
        f"{commit} with uncommitted changes in vaultstore_async/" if dirty else commit
    )


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# Entry point


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Time vaultstore_async operations beside raw SQL through"
        " `databases` and print the figures as Markdown tables.",
    )
    parser.add_argument(
        "--url",
        help="database URL (sqlite:///path, postgresql://..., mysql://...);"
        " default: an SQLite file in a new temporary folder",
    )
    parser.add_argument(
        "--kdf",
        default="default",
        choices=sorted(KdfProfile.PRESETS),
        help="Argon2id preset for every store (default: default, opslimit 3 and"
        " 64 MiB); insecure_fast_for_tests is for smoke runs only",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small counts for a smoke run (1,000 rows instead of 100,000)",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="measure peak memory (tracemalloc and RSS) of the 100,000-row"
        " operations instead of timing",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--only",
        help="comma-separated benchmarks to run; timing: "
        + ", ".join(TIMED_SECTIONS)
        + "; memory: "
        + ", ".join(MEMORY_SECTIONS),
    )
    args = parser.parse_args(argv)
    sections = MEMORY_SECTIONS if args.memory else TIMED_SECTIONS
    if args.only:
        chosen = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in sections]
        if unknown:
            parser.error(
                f"--only: unknown benchmark {', '.join(unknown)};"
                f" choose from {', '.join(sections)}"
            )
        args.sections = chosen
    else:
        args.sections = list(sections)
    return args


async def describe_run(
    args: argparse.Namespace, ctx: Context, sizes: Sizes
) -> dict[str, Any]:
    """Collect what a reader needs to repeat the run: command, machine,
    package revision, database server and sizes."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": f"{platform.system()} {platform.machine()},"
        f" {available_cores()} cores, Python {platform.python_version()}",
        "load_average_at_start": os.getloadavg()[0],
        "package": package_revision(),
        "database": str(ctx.db.url.obscure_password),
        "server": await server_version(ctx.db, ctx.dialect),
        "kdf": args.kdf,
        "mode": ("memory" if args.memory else "timing")
        + (", quick" if args.quick else ""),
        "sizes": asdict(sizes),
        "tables_prefix": ctx.prefix,
    }


async def run_sections(
    ctx: Context, names: list[str], memory_mode: bool
) -> tuple[list[Result], list[LagResult], list[MemoryResult]]:
    results: list[Result] = []
    lags: list[LagResult] = []
    memory: list[MemoryResult] = []
    sections = MEMORY_SECTIONS if memory_mode else TIMED_SECTIONS
    for name in names:
        logger.info("running %s", name)
        start = time.perf_counter()
        for item in await sections[name](ctx):
            if isinstance(item, Result):
                results.append(item)
            elif isinstance(item, LagResult):
                lags.append(item)
            else:
                memory.append(item)
        logger.info("%s took %.1f s", name, time.perf_counter() - start)
    return results, lags, memory


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Run the chosen benchmarks, drop their tables, print and return the report."""
    sizes = QUICK if args.quick else FULL
    db = databases.Database(url)
    await db.connect()
    ctx = Context(
        url=url,
        dialect=dialect_name(url),
        kdf=args.kdf,
        sizes=sizes,
        prefix=f"vsb{secrets.token_hex(4)}",
        db=db,
    )
    report = await describe_run(args, ctx, sizes)

    try:
        if not args.memory:
            logger.info("calibrating Argon2id (%s)", args.kdf)
            calibration = calibrate_kdf(
                args.kdf, available_cores(), 3 if args.quick else 5
            )
            report["calibration"] = asdict(calibration)
        results, lags, memory = await run_sections(ctx, args.sections, args.memory)
    finally:
        dropped = await ctx.drop_tables()
        logger.info("dropped %d tables", len(dropped))
        await db.disconnect()

    report["results"] = [result.summary() for result in results]
    report["lag"] = [lag.summary() for lag in lags]
    report["memory"] = [item.summary() for item in memory]
    targets = evaluate_targets(results, lags, memory, sizes)
    if args.memory:
        targets = [target for target in targets if "memory" in target.goal]
    report["targets"] = [asdict(target) for target in targets]
    print_report(report, results, lags, memory, targets)
    return report


def print_report(
    report: dict[str, Any],
    results: list[Result],
    lags: list[LagResult],
    memory: list[MemoryResult],
    targets: list[Target],
) -> None:
    lines = [
        "# vaultstore_async benchmarks",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {report['machine']},"
        f" 1-minute load average at start {report['load_average_at_start']:.2f}",
        f"- package: vaultstore_async at {report['package']}",
        f"- database: {report['database']} ({report['server']})",
        f"- mode: {report['mode']}; KDF preset {report['kdf']}",
    ]
    calibration = report.get("calibration")
    if calibration:
        lines.append(
            f"- Argon2id alone: {format_ms(calibration['single_seconds'])} ms for one"
            f" derivation; {format_ms(calibration['parallel_seconds'])} ms each with"
            f" {calibration['threads']} threads deriving at once"
        )
    lines.append("")
    if results:
        lines += [
            "n is the number of timed calls; p50 and p99 are per call;"
            " KDF/op and SQL/op are the store's key derivations and SQL"
            " statements per call; ratio is p50 over the raw baseline's p50.",
            "",
            results_table(results),
            "",
        ]
        lines += [
            f"- {result.name}: {result.note}" for result in results if result.note
        ]
        lines.append("")
    if lags:
        lines += [
            "Event-loop lag: how late a 1 ms asyncio.sleep woke, pooled over all runs.",
            "",
            lag_table(lags),
            "",
        ]
    if memory:
        lines += [
            "Memory: tracemalloc counts Python allocations; RSS growth is the"
            " process's peak resident memory during the call over its RSS before"
            " it, and includes Argon2id's working memory (memlimit per"
            " derivation running at once).",
            "",
            memory_table(memory),
            "",
        ]
    lines += [
        "Targets (defined for an SQLite file at the default KDF):",
        "",
        targets_table(targets),
    ]
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr
    )
    # Each store logs its connect and close at INFO, and a run opens dozens.
    logging.getLogger("vaultstore_async").setLevel(logging.WARNING)
    logging.getLogger("databases").setLevel(logging.WARNING)
    if args.kdf == "insecure_fast_for_tests":
        logging.getLogger("vaultstore_async").setLevel(logging.ERROR)
    # MariaDB reports CREATE TABLE IF NOT EXISTS on an existing table as a
    # warning, which aiomysql passes on to the warnings module.
    warnings.filterwarnings("ignore", module="aiomysql")
    with tempfile.TemporaryDirectory(prefix="vaultstore-bench-") as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'bench.db'}"
        report = asyncio.run(run(args, url))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        logger.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

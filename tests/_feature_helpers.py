"""Shared pieces for the batch, password-change, record and settings tests.

Bulk creation and per-row password checks run in a few worker coroutines
rather than one task per row. On SQLite every task opens its own
connection, so hundreds of tasks are slower than a handful of workers that
each keep one connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import databases

from vaultstore_async import AsyncStore, DecryptionError, TokenExpiredError

NEW_PASSWORD = "a fresh long password 9012"
WORKERS = 4

Item = TypeVar("Item")
Result = TypeVar("Result")

# Unicode, quotes, LIKE wildcards, backslashes, bind-parameter syntax and
# strings that a padding, case-folding or normalising collation would merge.
AWKWARD_KEYS = [
    "plain",
    "Plain",
    "PLAIN",
    "plain ",
    " plain",
    "pl%n",
    "pl_n",
    "%",
    "_",
    "pla'n",
    'pla"n',
    "pla`n",
    "pla\\n",
    ":name",
    "a:name",
    "%(name)s",
    "?",
    "$1",
    "café",
    "cafe\u0301",
    "ß",
    "ss",
    "日本語",
    "🔑 key",
    "é" * 255,
    "🔑" * 255,
]


def hours_from_now(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


async def run_in_workers(
    items: Sequence[Item],
    action: Callable[[Item], Awaitable[Result]],
    workers: int = WORKERS,
) -> list[Result]:
    """Apply `action` to every item from `workers` coroutines and return the
    results in the order of `items`."""
    results: list[Any] = [None] * len(items)

    async def work(start: int) -> None:
        for index in range(start, len(items), workers):
            results[index] = await action(items[index])

    await asyncio.gather(*(work(start) for start in range(workers)))
    return results


async def create_tokens(
    store: AsyncStore,
    values: Sequence[str],
    password: str,
    *,
    expires_at: datetime | None = None,
) -> list[str]:
    """Create one token per value and return the tokens in the same order."""

    async def create(value: str) -> str:
        return await store.create_token(value, password, expires_at=expires_at)

    return await run_in_workers(values, create)


async def opens_under(store: AsyncStore, token: str, password: str) -> bool:
    """Return whether `password` opens the live row holding `token`.

    An expired token counts as opened, because read_token raises
    TokenExpiredError only after the password has opened the value.
    """
    try:
        await store.read_token(token, password)
    except DecryptionError:
        return False
    except TokenExpiredError:
        return True
    return True


async def passwords_opening(
    store: AsyncStore, tokens: Sequence[str], passwords: Sequence[str]
) -> dict[str, list[str]]:
    """Map each token to the passwords, among `passwords`, that open it."""

    async def check(token: str) -> list[str]:
        return [
            password
            for password in passwords
            if await opens_under(store, token, password)
        ]

    opened = await run_in_workers(tokens, check)
    return dict(zip(tokens, opened, strict=True))


async def raw_count(url: str, table: str, where: str = "", values: Any = None) -> int:
    """Count rows with plain SQL on a connection of its own, bypassing the store."""
    async with databases.Database(url) as db:
        sql = f"SELECT COUNT(*) FROM {table}"
        if where:
            sql += f" WHERE {where}"
        return int(await db.fetch_val(sql, values))

"""AsyncStore: the public class, composed from one mixin per concern."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import databases

from . import _validate as check
from ._go_ops import GoOps
from ._goimport import GoImportReport


class AsyncStore(GoOps):
    """An encrypted secret store on SQLite, PostgreSQL or MariaDB/MySQL.

    Pass a database URL (the store then owns and closes the connection
    pool) or a connected or unconnected `databases.Database` (left open
    on close). Use it as `async with AsyncStore(url) as store:`.
    """


async def import_go(
    source_url: str | databases.Database,
    target_url: str | databases.Database,
    *,
    source_table: str = "vault",
    source_meta_table: str = "vault_meta",
    table_name: str = "vault",
    meta_table_name: str = "vault_meta",
    dry_run: bool = False,
    progress: Callable[[int, int], Any] | None = None,
) -> GoImportReport:
    """Import a Go VaultStore table into a vaultstore_async table.

    Opens the target, creating or migrating its tables unless `dry_run` is
    set, then runs `AsyncStore.import_go`. See there for what is copied,
    updated, skipped and rejected. A dry run writes no table, row or
    setting, though connecting to an SQLite target that does not exist yet
    creates the empty file.
    """
    store = AsyncStore(
        target_url,
        table_name=table_name,
        meta_table_name=meta_table_name,
        automigrate=not check.flag(dry_run, "dry_run"),
    )
    async with store:
        return await store.import_go(
            source_url,
            source_table=source_table,
            source_meta_table=source_meta_table,
            dry_run=dry_run,
            progress=progress,
        )

"""Importing a Go VaultStore table into this store."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import databases

from . import _goformat
from . import _validate as check
from ._backend import Backend, UniqueViolation
from ._base import _table_name
from ._dialect import in_list
from ._errors import ValidationError
from ._goimport import (
    GoImportRejection,
    GoImportReport,
    ImportRow,
    RowRejected,
    convert_row,
    row_label,
)
from ._migrations import create_go_ledger
from ._settings import SettingsOps, setting_value
from ._stats import Stats
from ._tasks import Progress, check_progress, report_progress
from ._tokens import generate_id

logger = logging.getLogger("vaultstore_async")

IMPORT_PAGE = 500
_STATEMENT_BYTES = 4 * 1024 * 1024


class _Source:
    """Read access to the Go tables."""

    def __init__(self, backend: Backend, table: str, meta: str) -> None:
        self.backend = backend
        self.table = backend.dialect.quote(table)
        self.meta = backend.dialect.quote(meta)
        self.meta_name = meta

    async def count(self) -> int:
        row = await self.backend.fetch_one(f"SELECT COUNT(*) AS n FROM {self.table}")
        return int(row["n"]) if row is not None else 0

    async def _rows(self, sql: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        rows = await self.backend.fetch_all(sql, values)
        # Plain dicts with lower-case names: `SELECT *` returns whatever
        # columns this table has, and a Go table from before expiry existed
        # has no expires_at. Iterating a row gives values, hence keys().
        return [
            {key.lower(): row[key] for key in row.keys()}  # noqa: SIM118
            for row in rows
        ]

    async def page(self, after: str | None) -> list[dict[str, Any]]:
        where = "id IS NOT NULL" if after is None else "id > :after"
        values = {} if after is None else {"after": after}
        return await self._rows(
            f"SELECT * FROM {self.table} WHERE {where} ORDER BY id LIMIT {IMPORT_PAGE}",
            values,
        )

    async def rows_without_id(self, after: str | None) -> list[dict[str, Any]]:
        where = "" if after is None else " AND vault_token > :after"
        values = {} if after is None else {"after": after}
        return await self._rows(
            f"SELECT * FROM {self.table} WHERE id IS NULL AND vault_token IS NOT NULL"
            f"{where} ORDER BY vault_token LIMIT {IMPORT_PAGE}",
            values,
        )

    async def count_without_id_or_token(self) -> int:
        row = await self.backend.fetch_one(
            f"SELECT COUNT(*) AS n FROM {self.table}"
            " WHERE id IS NULL AND vault_token IS NULL"
        )
        return int(row["n"]) if row is not None else 0

    async def settings(self) -> list[Mapping[str, Any]] | None:
        if not await self.backend.table_exists(self.meta_name):
            return None
        return await self.backend.fetch_all(
            f"SELECT meta_key, meta_value FROM {self.meta}"
            " WHERE object_type = 'vault' AND object_id = 'settings' ORDER BY id"
        )


class GoOps(SettingsOps):
    _ledger_exists = False

    async def import_go(
        self,
        source: str | databases.Database,
        *,
        source_table: str = "vault",
        source_meta_table: str = "vault_meta",
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> GoImportReport:
        """Copy every row and vault setting of a Go VaultStore table into
        this store, with tokens and stored values unchanged.

        Times, expiry and soft deletion carry over (see README, "Moving from
        Go VaultStore"), and a row that Go could no longer read stays
        unreadable here. Running it again imports new rows and brings rows
        imported before up to date in the safe direction only: a deletion,
        an earlier expiry, or a new Go value while the row here still has
        the value imported. Nothing is revived or extended, and a value
        changed both in Go and here is reported rather than copied. The
        ledger table `<table_name>_go_ledger`, created by the first import,
        records what was imported.
        Rows that cannot be carried over faithfully are listed in the
        report's `rejected` with the reason and left out. `progress`, if
        given, is called after each page with (rows examined, total rows).
        No password is needed: values are read later through `read_token`
        and the other read methods, or re-encrypted with `upgrade_format`.

        Raises:
            ValidationError: an argument is invalid, the source table does
                not exist, or it is this store's own table.
            StoreClosedError, BackendError: as for every operation.
        """
        self._require_open()
        source_name = _table_name(source_table, "source_table")
        source_meta = _table_name(source_meta_table, "source_meta_table")
        dry_run = check.flag(dry_run, "dry_run")
        check_progress(progress)
        backend = Backend(source, Stats())
        if backend.url_for_logs == self._backend.url_for_logs and (
            source_name.lower() in (self._names.vault.lower(), self._names.meta.lower())
        ):
            raise ValidationError(
                "source_table must not be this store's own table. Import into"
                " other table names"
            )
        await backend.connect()
        try:
            if not await backend.table_exists(source_name):
                raise ValidationError(
                    f"source_table {source_name!r} does not exist in the source"
                    " database"
                )
            return await self._import_from(
                _Source(backend, source_name, source_meta), dry_run, progress
            )
        finally:
            await backend.close()

    async def _import_from(
        self, source: _Source, dry_run: bool, progress: Progress | None
    ) -> GoImportReport:
        report = GoImportReport(dry_run=dry_run)
        ready = await self._backend.table_exists(self._names.vault)
        if not ready and not dry_run:
            raise ValidationError(
                "the target tables do not exist. Connect with automigrate=True"
                " or run migrate() first"
            )

        self._ledger_exists = await self._backend.table_exists(self._names.go_ledger)
        if ready and not dry_run and not self._ledger_exists:
            await create_go_ledger(self._backend, self._names)
            self._ledger_exists = True

        total = await source.count()
        now = self._now()
        # Rows with an id, paged by id, then rows without one, by token.
        for fetch, key in (
            (source.page, "id"),
            (source.rows_without_id, "vault_token"),
        ):
            after: str | None = None
            while page := await fetch(after):
                after = page[-1][key]
                await self._import_page(page, now, report, ready)
                await report_progress(progress, report.examined, total)

        unnamed = await source.count_without_id_or_token()
        for _ in range(unnamed):
            report.examined += 1
            report.rejected.append(
                GoImportRejection("row without id or token", "vault_token is missing")
            )
        if unnamed:
            await report_progress(progress, report.examined, total)
        if report.examined < total:
            logger.warning(
                "Go import: %d source rows were counted but not read; rows"
                " deleted from the source during the import are the usual cause",
                total - report.examined,
            )
        await self._import_settings(source, report, ready)
        logger.info("Go import: %s", report.summary())
        return report

    async def _import_page(
        self,
        page: list[dict[str, Any]],
        now: datetime,
        report: GoImportReport,
        ready: bool,
    ) -> None:
        report.examined += len(page)
        rows: list[ImportRow] = []
        for raw in page:
            try:
                rows.append(convert_row(raw, now))
            except RowRejected as exc:
                report.rejected.append(GoImportRejection(row_label(raw), str(exc)))
        if ready:
            rows = await self._drop_known(rows, report)
        if report.dry_run:
            report.imported += len(rows)
            report.scheduled_deletions += sum(row.scheduled for row in rows)
            return
        if not rows:
            return
        try:
            async with self._backend.transaction():
                await self._insert_rows(rows)
            report.imported += len(rows)
            report.scheduled_deletions += sum(row.scheduled for row in rows)
        except UniqueViolation:
            # Another writer, or a duplicate inside the source, took a token
            # or id after the check: go row by row to sort them out.
            for row in rows:
                await self._import_one(row, report)

    async def _drop_known(
        self, rows: list[ImportRow], report: GoImportReport
    ) -> list[ImportRow]:
        """Bring rows imported before up to date with the source, reject
        rows whose token or id another target row already has, and return
        the rows still to insert."""
        if not rows:
            return rows
        tokens = [row.token for row in rows]
        ledger = await self._ledger_rows(tokens)
        by_token = await self._target_rows("vault_token", tokens)
        by_id = await self._target_rows("id", [row.id for row in rows])
        fresh = []
        for row in rows:
            existing = by_token.get(row.token)
            entry = ledger.get(row.token)
            if entry is not None and not (
                row.id_generated or entry["row_id"] == row.id
            ):
                # Another Go table imported this token under another id.
                report.rejected.append(
                    GoImportRejection(_label(row), "the target already has the token")
                )
            elif entry is not None:
                if existing is None or existing["id"] != entry["row_id"]:
                    # Deleted here after the import: never brought back.
                    report.skipped += 1
                else:
                    await self._reconcile(
                        existing, entry["go_digest"], True, row, report
                    )
            elif existing is not None:
                if existing["id"] == row.id:
                    # Imported while the ledger did not record it (it was
                    # dropped, say). Assume the row here started from this Go
                    # value unless it still has another Go value.
                    current = existing["vault_value"]
                    known = current if _goformat.is_go_value(current) else row.value
                    await self._reconcile(existing, _digest(known), False, row, report)
                else:
                    report.rejected.append(
                        GoImportRejection(
                            _label(row), "the target already has the token"
                        )
                    )
            elif row.id in by_id:
                if row.id_generated:
                    fresh.append(replace(row, id=generate_id()))
                else:
                    report.rejected.append(
                        GoImportRejection(
                            _label(row),
                            "the target already has the id with another token",
                        )
                    )
            else:
                fresh.append(row)
        return fresh

    async def _target_rows(
        self, column: str, keys: list[str]
    ) -> dict[str, Mapping[str, Any]]:
        if not keys:
            return {}
        placeholders, names = in_list("k", keys)
        found = await self._backend.fetch_all(
            f"SELECT id, vault_token, vault_value, expires_at, soft_deleted_at"
            f" FROM {self._vault} WHERE {column} IN ({placeholders})",
            names,
        )
        return {row[column]: row for row in found}

    @property
    def _ledger(self) -> str:
        return self._q(self._names.go_ledger)

    async def _ledger_rows(self, tokens: list[str]) -> dict[str, Mapping[str, Any]]:
        if not self._ledger_exists:
            return {}
        placeholders, names = in_list("k", tokens)
        found = await self._backend.fetch_all(
            f"SELECT vault_token, row_id, go_digest FROM {self._ledger}"
            f" WHERE vault_token IN ({placeholders})",
            names,
        )
        return {row["vault_token"]: row for row in found}

    async def _record(self, token: str, row_id: str, value: str) -> None:
        """Note in the ledger which Go value a target row came from."""
        await self._record_all([(token, row_id, value)])

    async def _record_all(self, entries: list[tuple[str, str, str]]) -> None:
        """Note (token, target id, Go value) entries in one statement."""
        values: dict[str, Any] = {"now": self._db_time(self._now())}
        for n, (token, row_id, value) in enumerate(entries):
            values[f"token{n}"] = token
            values[f"row_id{n}"] = row_id
            values[f"digest{n}"] = _digest(value)
        await self._backend.execute(
            self._backend.dialect.upsert_ledger(self._ledger, len(entries)), values
        )

    async def _reconcile(
        self,
        existing: Mapping[str, Any],
        digest: str,
        recorded: bool,
        row: ImportRow,
        report: GoImportReport,
    ) -> None:
        """Carry changes made in Go since the last import into the target
        row, in the safe direction only: a deletion, an earlier expiry, and
        a new Go value while the row here still has the value imported.
        `digest` is the digest of the Go value last imported, and `recorded`
        is True when the ledger already has it. A value changed both in Go
        and here is reported, not copied."""
        changes: dict[str, Any] = {}
        if row.soft_deleted_at is not None and existing["soft_deleted_at"] is None:
            changes["soft_deleted_at"] = self._db_time(row.soft_deleted_at)
        existing_expiry = self._py_time(existing["expires_at"])
        if row.expires_at is not None and (
            existing_expiry is None or row.expires_at < existing_expiry
        ):
            changes["expires_at"] = self._db_time(row.expires_at)

        conflict = False
        go_changed = _digest(row.value) != digest
        if go_changed and existing["vault_value"] != row.value:
            if _digest(existing["vault_value"]) == digest:
                changes["vault_value"] = row.value
            else:
                conflict = True
        record = not conflict and (go_changed or not recorded)

        if not report.dry_run and (changes or record):
            written = await self._apply(existing, row, changes, record)
            if not written:
                report.rejected.append(
                    GoImportRejection(
                        _label(row),
                        "the row changed here during the import; run it again",
                    )
                )
                return

        if conflict:
            applied = " (its deletion or expiry was applied)" if changes else ""
            report.rejected.append(
                GoImportRejection(
                    _label(row),
                    "the value changed in the source and here since the import"
                    + applied,
                )
            )
        elif changes:
            report.updated += 1
            if row.scheduled and "expires_at" in changes:
                report.scheduled_deletions += 1
        else:
            report.skipped += 1

    async def _apply(
        self,
        existing: Mapping[str, Any],
        row: ImportRow,
        changes: dict[str, Any],
        record: bool,
    ) -> bool:
        """Write `changes` to the target row with compare-and-set and, with
        `record`, note the Go value in the ledger, both in one transaction.
        Return False when the row changed here meanwhile."""
        async with self._backend.transaction():
            if changes:
                assignments = ", ".join(f"{column} = :{column}" for column in changes)
                written = await self._backend.execute(
                    f"UPDATE {self._vault} SET {assignments}, updated_at = :now"
                    " WHERE id = :id AND vault_value = :old",
                    {
                        **changes,
                        "now": self._db_time(self._now()),
                        "id": existing["id"],
                        "old": existing["vault_value"],
                    },
                )
                if not written:
                    return False
            if record:
                await self._record(row.token, existing["id"], row.value)
        return True

    async def _insert_rows(self, rows: list[ImportRow]) -> None:
        """Insert rows and their ledger entries, a few statements per page:
        a statement carries at most about 4 MiB of stored values, well under
        MariaDB's default 16 MiB packet."""
        batch: list[ImportRow] = []
        size = 0
        for row in rows:
            if batch and size + len(row.value) > _STATEMENT_BYTES:
                await self._insert_batch(batch)
                batch, size = [], 0
            batch.append(row)
            size += len(row.value)
        if batch:
            await self._insert_batch(batch)

    async def _insert_batch(self, rows: list[ImportRow]) -> None:
        values: dict[str, Any] = {}
        tuples = []
        for n, row in enumerate(rows):
            columns = {
                "id": row.id,
                "token": row.token,
                "value": row.value,
                "created": self._db_time(row.created_at),
                "updated": self._db_time(row.updated_at),
                "expires": self._db_time(row.expires_at),
                "deleted": self._db_time(row.soft_deleted_at),
            }
            values.update({f"{name}{n}": value for name, value in columns.items()})
            tuples.append("(" + ", ".join(f":{name}{n}" for name in columns) + ")")
        await self._backend.execute(
            f"INSERT INTO {self._vault} (id, vault_token, vault_value, created_at,"
            " updated_at, expires_at, soft_deleted_at) VALUES " + ", ".join(tuples),
            values,
        )
        await self._record_all([(row.token, row.id, row.value) for row in rows])

    async def _import_one(self, row: ImportRow, report: GoImportReport) -> None:
        fresh = await self._drop_known([row], report)
        if not fresh:
            return
        try:
            async with self._backend.transaction():
                await self._insert_rows(fresh)
        except UniqueViolation:
            report.rejected.append(
                GoImportRejection(
                    _label(row), "the token or id appears twice in the source"
                )
            )
            return
        report.imported += 1
        report.scheduled_deletions += row.scheduled

    async def _import_settings(
        self, source: _Source, report: GoImportReport, ready: bool
    ) -> None:
        rows = await source.settings()
        if rows is None:
            logger.info("Go import: no %s table, so no settings", source.meta_name)
            return
        seen: set[str] = set()
        for row in rows:
            key, value = row["meta_key"], row["meta_value"]
            if value is None:
                value = ""
            label = f"setting {str(key)[:80]!r}"
            if isinstance(key, str):
                if key in seen:
                    continue  # Go reads the first row of a key, not the rest
                seen.add(key)
            try:
                key = check.identifier_text(key, "meta_key", check.MAX_KEY_LENGTH)
                value = setting_value(value)
            except ValidationError as exc:
                report.rejected.append(GoImportRejection(label, str(exc)))
                continue
            current = await self.get_setting(key) if ready else None
            if current is None:
                if not report.dry_run:
                    await self.set_setting(key, value)
                report.settings_imported += 1
            elif current == value:
                report.settings_skipped += 1
            else:
                report.rejected.append(
                    GoImportRejection(label, "the target has another value for it")
                )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _label(row: ImportRow) -> str:
    if row.id_generated:
        return f"row with token {row.token[:80]}"
    return f"row {row.id[:80]}"

"""Record-level access: list, count, find, import, update and delete rows.

Nothing here decrypts; a Record carries the stored text as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from . import _validate as check
from ._backend import UniqueViolation
from ._errors import (
    TokenExistsError,
    TokenNotFoundError,
    ValidationError,
)
from ._query import MAX_PAGING, QueryBuilder, Record, RecordQuery, check_query
from ._token_ops import TokenOps

_COLUMNS = (
    "id, vault_token, vault_value, created_at, updated_at, expires_at, soft_deleted_at"
)
PAGE_SIZE = 500
MAX_PAGE_SIZE = 100_000


def _record_arg(record: object) -> Record:
    if not isinstance(record, Record):
        raise ValidationError(f"record must be a Record, got {type(record).__name__}")
    check.identifier_text(record.id, "record.id", check.MAX_KEY_LENGTH)
    check.token(record.token, "record.token")
    if not isinstance(record.value, str):
        raise ValidationError(
            f"record.value must be a str, got {type(record.value).__name__}"
        )
    if len(record.value) > check.MAX_VALUE_BYTES * 2:
        raise ValidationError("record.value is longer than any value this store writes")
    if not record.value.isascii() or "\x00" in record.value:
        raise ValidationError(
            "record.value must be stored-value text (ASCII without NUL)"
        )
    for name in ("created_at", "updated_at", "expires_at", "soft_deleted_at"):
        check.aware_time(getattr(record, name), f"record.{name}")
    return record


class RecordOps(TokenOps):
    def _builder(self) -> QueryBuilder:
        return QueryBuilder(self._vault, self._db_time)

    def _to_record(self, row: Mapping[str, Any]) -> Record:
        return Record(
            id=row["id"],
            token=row["vault_token"],
            value=row["vault_value"],
            created_at=self._py_time(row["created_at"]),
            updated_at=self._py_time(row["updated_at"]),
            expires_at=self._py_time(row["expires_at"]),
            soft_deleted_at=self._py_time(row["soft_deleted_at"]),
        )

    def _select(
        self,
        query: RecordQuery,
        extra: str | None = None,
        extra_values: Any = None,
        now: datetime | None = None,
    ) -> tuple[str, dict[str, Any]]:
        builder = self._builder()
        clauses, values = builder.where(query, now or self._now())
        if extra:
            clauses.append(extra)
            values.update(extra_values)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_COLUMNS} FROM {self._vault}{where} {builder.order_sql(query)}"
        return sql, values

    def _paging(self, limit: int | None, offset: int | None) -> str:
        if limit is None and not offset:
            return ""
        # Every backend takes LIMIT with OFFSET; a huge LIMIT means "all".
        count = limit if limit is not None else MAX_PAGING
        return f" LIMIT {int(count)} OFFSET {int(offset or 0)}"

    async def list_records(self, query: RecordQuery | None = None) -> list[Record]:
        """Return the rows the query selects (by default every live row,
        ordered by created_at, then id)."""
        self._require_open()
        query = check_query(query)
        sql, values = self._select(query)
        sql += self._paging(query.limit, query.offset)
        rows = await self._backend.fetch_all(sql, values)
        return [self._to_record(row) for row in rows]

    def iter_records(
        self, query: RecordQuery | None = None, *, page_size: int = PAGE_SIZE
    ) -> AsyncIterator[Record]:
        """Return an async iterator over the rows of `list_records`, fetched
        in keyset pages of `page_size` rows so memory stays bounded whatever
        the table size. Arguments are checked here, before iteration starts.

        Raises:
            ValidationError: the query or page_size is invalid.
            StoreClosedError: the store is not connected.
        """
        self._require_open()
        query = check_query(query)
        if type(page_size) is not int or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValidationError(
                f"page_size must be an int from 1 to {MAX_PAGE_SIZE}, got {page_size!r}"
            )
        return self._pages(query, page_size, self._now())

    async def _pages(
        self, query: RecordQuery, page_size: int, now: datetime
    ) -> AsyncIterator[Record]:
        remaining = query.limit
        last: Mapping[str, Any] | None = None
        builder = self._builder()
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            if last is None:
                sql, values = self._select(query, now=now)
                sql += f" LIMIT {size} OFFSET {query.offset or 0}"
            else:
                clause, keyset = builder.after(query, dict(last))
                sql, values = self._select(query, clause, keyset, now=now)
                sql += f" LIMIT {size}"
            rows = await self._backend.fetch_all(sql, values)
            for row in rows:
                yield self._to_record(row)
            if len(rows) < size:
                return
            if remaining is not None:
                remaining -= len(rows)
            last = rows[-1]

    async def count_records(self, query: RecordQuery | None = None) -> int:
        """Count the rows the query's filters select (limit, offset and
        order are ignored)."""
        self._require_open()
        query = check_query(query)
        clauses, values = self._builder().where(query, self._now())
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        row = await self._backend.fetch_one(
            f"SELECT COUNT(*) AS n FROM {self._vault}{where}", values
        )
        return int(row["n"]) if row is not None else 0

    async def _find(
        self, column: str, value: str, include_soft_deleted: bool
    ) -> Record | None:
        live = "" if include_soft_deleted else " AND soft_deleted_at IS NULL"
        row = await self._backend.fetch_one(
            f"SELECT {_COLUMNS} FROM {self._vault} WHERE {column} = :value{live}",
            {"value": value},
        )
        return None if row is None else self._to_record(row)

    async def find_record_by_id(
        self, id: str, *, include_soft_deleted: bool = False
    ) -> Record | None:
        """Return the row with this id, or None."""
        self._require_open()
        check.identifier_text(id, "id", check.MAX_KEY_LENGTH)
        check.flag(include_soft_deleted, "include_soft_deleted")
        return await self._find("id", id, include_soft_deleted)

    async def find_record_by_token(
        self, token: str, *, include_soft_deleted: bool = False
    ) -> Record | None:
        """Return the row with this token, or None."""
        self._require_open()
        check.token(token)
        check.flag(include_soft_deleted, "include_soft_deleted")
        return await self._find("vault_token", token, include_soft_deleted)

    def _clash(self, exc: UniqueViolation, record: Record) -> Exception:
        if self._is_token_clash(exc):
            return TokenExistsError("token already exists")
        return ValidationError("record.id is already used by another row")

    async def create_record(self, record: Record) -> None:
        """Insert a record as given (for imports); missing created_at and
        updated_at become now.

        Raises:
            TokenExistsError: a row already has the token.
            ValidationError: the id is empty or already used.
        """
        self._require_open()
        record = _record_arg(record)
        now = self._now()
        try:
            await self._backend.execute(
                f"INSERT INTO {self._vault} ({_COLUMNS}) VALUES (:id, :token,"
                " :value, :created_at, :updated_at, :expires_at, :soft_deleted_at)",
                {
                    "id": record.id,
                    "token": record.token,
                    "value": record.value,
                    "created_at": self._db_time(record.created_at or now),
                    "updated_at": self._db_time(record.updated_at or now),
                    "expires_at": self._db_time(record.expires_at),
                    "soft_deleted_at": self._db_time(record.soft_deleted_at),
                },
            )
        except UniqueViolation as exc:
            raise self._clash(exc, record) from None

    async def update_record(self, record: Record) -> None:
        """Write token, value, expires_at and soft_deleted_at of the row with
        the record's id, and set its updated_at to now.

        Raises:
            TokenNotFoundError: no row has that id.
            TokenExistsError: another row has the token.
        """
        self._require_open()
        record = _record_arg(record)
        try:
            changed = await self._backend.execute(
                f"UPDATE {self._vault} SET vault_token = :token, vault_value = :value,"
                " expires_at = :expires_at, soft_deleted_at = :soft_deleted_at,"
                " updated_at = :now WHERE id = :id",
                {
                    "token": record.token,
                    "value": record.value,
                    "expires_at": self._db_time(record.expires_at),
                    "soft_deleted_at": self._db_time(record.soft_deleted_at),
                    "now": self._db_time(self._now()),
                    "id": record.id,
                },
            )
        except UniqueViolation as exc:
            raise self._clash(exc, record) from None
        if not changed:
            raise TokenNotFoundError("no record has that id")

    async def delete_record_by_id(self, id: str) -> bool:
        """Hard-delete the row with this id; return whether one was deleted."""
        self._require_open()
        check.identifier_text(id, "id", check.MAX_KEY_LENGTH)
        return await self._delete_by("id", id)

    async def delete_record_by_token(self, token: str) -> bool:
        """Hard-delete the row with this token; return whether one was deleted."""
        self._require_open()
        check.token(token)
        return await self._delete_by("vault_token", token)

    async def soft_delete_record_by_id(self, id: str) -> None:
        """Soft-delete the live row with this id.

        Raises:
            TokenNotFoundError: no live row has that id.
        """
        self._require_open()
        check.identifier_text(id, "id", check.MAX_KEY_LENGTH)
        if not await self._soft_delete_by("id", id):
            raise TokenNotFoundError("no live record matches")

    async def soft_delete_record_by_token(self, token: str) -> None:
        """Soft-delete the live row with this token.

        Raises:
            TokenNotFoundError: no live row has the token.
        """
        self._require_open()
        check.token(token)
        if not await self._soft_delete_by("vault_token", token):
            raise TokenNotFoundError("no live record matches")

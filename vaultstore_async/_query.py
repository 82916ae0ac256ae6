"""Record, RecordQuery and the SQL a query turns into."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import _validate as check
from ._errors import ValidationError

ORDER_COLUMNS = {
    "id": "id",
    "token": "vault_token",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "expires_at": "expires_at",
    "soft_deleted_at": "soft_deleted_at",
}
_NULLABLE = {"expires_at", "soft_deleted_at"}
MAX_IN_ITEMS = 10_000
# Every backend takes a signed 64-bit LIMIT and OFFSET.
MAX_PAGING = 2**62


@dataclass(frozen=True, slots=True)
class Record:
    """One stored row. `value` is the stored ciphertext text, never
    decrypted here, and is left out of the repr."""

    id: str
    token: str
    value: str = field(repr=False)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expires_at: datetime | None = None
    soft_deleted_at: datetime | None = None


def _text_list(values: object, argument: str, max_length: int) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValidationError(
            f"{argument} must be a list of str, got {type(values).__name__}"
        )
    items = tuple(
        check.identifier_text(item, f"{argument}[{index}]", max_length)
        for index, item in enumerate(values)
    )
    if not items:
        raise ValidationError(f"{argument} must not be empty")
    if len(items) > MAX_IN_ITEMS:
        raise ValidationError(
            f"{argument} must hold at most {MAX_IN_ITEMS} items, got {len(items)}"
        )
    return items


def _optional_count(value: object, argument: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise ValidationError(
            f"{argument} must be an int or None, got {type(value).__name__}"
        )
    if not 0 <= value <= MAX_PAGING:
        raise ValidationError(
            f"{argument} must be between 0 and {MAX_PAGING}, got {value}"
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordQuery:
    """Filters, order and paging for listing records; checked when built.

    By default only live rows (not soft-deleted) are selected, ordered by
    `created_at`, then `id`. NULL expiry ("never") sorts after every time.
    """

    id: str | None = None
    id_in: Iterable[str] | None = None
    token: str | None = None
    token_in: Iterable[str] | None = None
    limit: int | None = None
    offset: int | None = None
    order_by: str | None = None
    descending: bool = False
    include_soft_deleted: bool = False
    only_soft_deleted: bool = False
    expired: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def __post_init__(self) -> None:
        if self.id is not None:
            check.identifier_text(self.id, "id", check.MAX_KEY_LENGTH)
        if self.token is not None:
            check.token(self.token)
        if self.id_in is not None:
            object.__setattr__(
                self, "id_in", _text_list(self.id_in, "id_in", check.MAX_KEY_LENGTH)
            )
        if self.token_in is not None:
            object.__setattr__(
                self,
                "token_in",
                _text_list(self.token_in, "token_in", check.MAX_TOKEN_LENGTH),
            )
        _optional_count(self.limit, "limit")
        _optional_count(self.offset, "offset")
        if self.order_by is not None and (
            not isinstance(self.order_by, str) or self.order_by not in ORDER_COLUMNS
        ):
            names = ", ".join(ORDER_COLUMNS)
            raise ValidationError(f"order_by must be one of {names}")
        check.flag(self.descending, "descending")
        check.flag(self.include_soft_deleted, "include_soft_deleted")
        check.flag(self.only_soft_deleted, "only_soft_deleted")
        if self.expired is not None:
            check.flag(self.expired, "expired")
        for name in ("created_after", "created_before"):
            object.__setattr__(self, name, check.aware_time(getattr(self, name), name))


def check_query(query: object) -> RecordQuery:
    return check.instance_or_none(query, RecordQuery, "query") or RecordQuery()


class QueryBuilder:
    """Turns a RecordQuery into SQL for one dialect's quoting and times."""

    def __init__(self, table: str, to_db_time: Any) -> None:
        self._table = table
        self._to_db_time = to_db_time

    def where(
        self, query: RecordQuery, now: datetime
    ) -> tuple[list[str], dict[str, Any]]:
        clauses: list[str] = []
        values: dict[str, Any] = {}
        if query.id is not None:
            clauses.append("id = :id")
            values["id"] = query.id
        if query.token is not None:
            clauses.append("vault_token = :token")
            values["token"] = query.token
        for column, items, prefix in (
            ("id", query.id_in, "i"),
            ("vault_token", query.token_in, "t"),
        ):
            if items is None:
                continue
            names = []
            for index, item in enumerate(items):
                values[f"{prefix}{index}"] = item
                names.append(f":{prefix}{index}")
            clauses.append(f"{column} IN ({', '.join(names)})")
        if query.only_soft_deleted:
            clauses.append("soft_deleted_at IS NOT NULL")
        elif not query.include_soft_deleted:
            clauses.append("soft_deleted_at IS NULL")
        if query.expired is True:
            clauses.append("(expires_at IS NOT NULL AND expires_at <= :now)")
            values["now"] = self._to_db_time(now)
        elif query.expired is False:
            clauses.append("(expires_at IS NULL OR expires_at > :now)")
            values["now"] = self._to_db_time(now)
        if query.created_after is not None:
            clauses.append("created_at > :created_after")
            values["created_after"] = self._to_db_time(query.created_after)
        if query.created_before is not None:
            clauses.append("created_at < :created_before")
            values["created_before"] = self._to_db_time(query.created_before)
        return clauses, values

    def order(self, query: RecordQuery) -> tuple[str, bool]:
        """Return (column, nullable) of the sort key; id always breaks ties."""
        column = ORDER_COLUMNS[query.order_by or "created_at"]
        return column, column in _NULLABLE

    def order_sql(self, query: RecordQuery) -> str:
        column, nullable = self.order(query)
        direction = " DESC" if query.descending else ""
        parts = []
        if nullable:
            # NULL (never) sorts as the latest time on every backend.
            parts.append(f"CASE WHEN {column} IS NULL THEN 1 ELSE 0 END{direction}")
        if column != "id":
            parts.append(f"{column}{direction}")
        parts.append(f"id{direction}")
        return "ORDER BY " + ", ".join(parts)

    def after(
        self, query: RecordQuery, last: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Return a WHERE clause that selects the rows after `last` in query
        order, for keyset paging."""
        column, nullable = self.order(query)
        op = "<" if query.descending else ">"
        values: dict[str, Any] = {"k_id": last["id"]}
        if column == "id":
            return f"id {op} :k_id", values
        key = last[column]
        if key is None:
            # Among NULLs only id orders; non-NULLs come before them
            # ascending and after them descending.
            clause = f"({column} IS NULL AND id {op} :k_id)"
            if query.descending:
                clause = f"({clause} OR {column} IS NOT NULL)"
            return clause, values
        values["k_col"] = key
        clause = (
            f"({column} IS NOT NULL AND ({column} {op} :k_col"
            f" OR ({column} = :k_col AND id {op} :k_id)))"
        )
        if nullable and not query.descending:
            clause = f"({clause} OR {column} IS NULL)"
        return clause, values

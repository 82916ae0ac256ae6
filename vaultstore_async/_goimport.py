"""Turning rows of a Go VaultStore table into rows of this library's table.

Go tables keep times as text `YYYY-MM-DD HH:MM:SS` in UTC (or as DATETIME
on MySQL), use `9999-12-31 23:59:59` for "never expires" and "not
deleted", and treat a row as live only while `soft_deleted_at` is later
than now. Here expiry and deletion are NULL when unset, so each row is
mapped with these rules:

- expires_at: the sentinel, NULL or empty means never.
- soft_deleted_at: the sentinel means live. A past time means deleted then.
  NULL or empty means deleted now, because Go's `soft_deleted_at > now`
  never held for it and the row was hidden. A future time (Go's scheduled
  deletion) keeps the row live and makes it expire then, if it did not
  expire earlier.
- created_at / updated_at: NULL or empty takes the other one, or the
  import time.

A time that does not parse rejects the row rather than guessing. A time
before the year 1000 becomes 1000-01-01, the start of the range MariaDB
documents for DATETIME.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import _goformat
from . import _validate as check
from ._errors import DecryptionError, ValidationError
from ._tokens import generate_id

SENTINEL = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
# Go writes `YYYY-MM-DD HH:MM:SS` in UTC. Its SQLite and MySQL drivers can
# hand back RFC 3339 (`...T...Z`), and other tools may add an offset.
_GO_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
    r"(Z|[+-]\d{2}:?\d{2})?",
    re.ASCII,
)
_ZERO_DATES = {"0000-00-00 00:00:00", "0000-00-00"}
# A legacy value of a 4 MiB plaintext takes about 14.2 MiB: base64 three
# times over and padding to a power of two.
_MAX_STORED = 15 * 1024 * 1024


class _Empty:
    """NULL, an empty string or MySQL's zero date."""


EMPTY = _Empty()


class RowRejected(Exception):
    """Raised when a source row cannot be imported, with the reason as message."""


@dataclass(frozen=True, slots=True)
class GoImportRejection:
    """A source row or setting that was not imported, and why.

    `source` names it by id (or by token when the id is missing), or as
    `setting <key>`. It contains no value.
    """

    source: str
    reason: str


@dataclass(slots=True)
class GoImportReport:
    """Counts and rejections of one import, or of what a dry run would do."""

    dry_run: bool
    examined: int = 0
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    scheduled_deletions: int = 0
    settings_imported: int = 0
    settings_skipped: int = 0
    rejected: list[GoImportRejection] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return sum(1 for item in self.rejected if not item.source.startswith("setting"))

    def summary(self) -> str:
        """Return the counts as one line, as the command line prints them."""
        verb = "would import" if self.dry_run else "imported"
        settings_rejected = len(self.rejected) - self.rows_rejected
        line = (
            f"{verb} {self.imported} rows, updated {self.updated}, skipped"
            f" {self.skipped} already imported, rejected {self.rows_rejected};"
            f" settings: {verb}"
            f" {self.settings_imported}, skipped {self.settings_skipped},"
            f" rejected {settings_rejected}"
        )
        if self.scheduled_deletions:
            line += (
                f"; {self.scheduled_deletions} scheduled deletions became expiry times"
            )
        return line


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A source row converted to this library's columns."""

    id: str
    token: str
    value: str = field(repr=False)
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    soft_deleted_at: datetime | None
    id_generated: bool
    scheduled: bool = False


def go_time(value: object, column: str) -> datetime | _Empty:
    """Parse one Go timestamp column into an aware UTC time or EMPTY."""
    if value is None:
        return EMPTY
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return _in_range(value.replace(tzinfo=UTC))
        return _in_range(value.astimezone(UTC))

    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise RowRejected(f"{column} is not a time") from None
    if not isinstance(value, str):
        raise RowRejected(f"{column} is not a time")

    text = value.strip()
    if text == "" or text in _ZERO_DATES:
        return EMPTY
    match = _GO_TIME.fullmatch(text)
    if match is None:
        raise RowRejected(f"{column} is not a time in the Go format")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction = match.group(7)
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0

    zone = match.group(8)
    offset = timedelta(0)
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if zone[0] == "-":
            offset = -offset
    try:
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        raise RowRejected(f"{column} is not a valid date") from None
    try:
        return _in_range(local - offset)
    except OverflowError:
        # The offset pushed the time past the year 9999 or before year 1.
        return SENTINEL if offset < timedelta(0) else EARLIEST


def _in_range(value: datetime) -> datetime:
    """Move a time before the year 1000 to 1000-01-01, the start of the range
    MariaDB documents for DATETIME and this library accepts elsewhere. A past
    expiry or deletion stays in the past."""
    return max(value, EARLIEST)


def _is_set(value: datetime | _Empty) -> bool:
    return isinstance(value, datetime) and value < SENTINEL


def convert_row(row: Mapping[str, Any], now: datetime) -> ImportRow:
    """Map one Go row to this library's columns. Raise RowRejected with the
    reason when that cannot be done faithfully."""
    raw_id = row.get("id")
    id_generated = raw_id is None or raw_id == ""
    row_id = generate_id() if id_generated else raw_id
    if isinstance(row_id, int) and not isinstance(row_id, bool):
        row_id = str(row_id)
    try:
        row_id = check.identifier_text(row_id, "id", check.MAX_KEY_LENGTH)
    except ValidationError as exc:
        raise RowRejected(str(exc)) from None
    token = row.get("vault_token")
    try:
        token = check.token(token, "vault_token")
    except ValidationError as exc:
        raise RowRejected(str(exc)) from None
    value = _go_value(row.get("vault_value"))

    created = go_time(row.get("created_at"), "created_at")
    updated = go_time(row.get("updated_at"), "updated_at")
    expires = go_time(row.get("expires_at"), "expires_at")
    # A table without the column never soft-deleted anything.
    raw_deleted = row.get("soft_deleted_at", SENTINEL)
    deleted = go_time(raw_deleted, "soft_deleted_at")

    created_at = _first_time(created, updated, now)
    updated_at = _first_time(updated, created, now)
    expires_at = expires if isinstance(expires, datetime) and _is_set(expires) else None
    soft_deleted_at: datetime | None = None
    scheduled = False
    if isinstance(deleted, _Empty):
        soft_deleted_at = now
    elif _is_set(deleted) and deleted <= now:
        soft_deleted_at = deleted
    elif _hidden_by_text(raw_deleted, now):
        # Go compared the text itself with now, so text such as a time with
        # an offset or a leading space could hide a row that parses as live.
        soft_deleted_at = now
    elif _is_set(deleted):
        # A scheduled deletion: live now, and unreadable from that time.
        scheduled = True
        if expires_at is None or deleted < expires_at:
            expires_at = deleted
    return ImportRow(
        id=row_id,
        token=token,
        value=value,
        created_at=created_at,
        updated_at=updated_at,
        expires_at=expires_at,
        soft_deleted_at=soft_deleted_at,
        id_generated=id_generated,
        scheduled=scheduled,
    )


def _hidden_by_text(raw: object, now: datetime) -> bool:
    """Apply Go's live-row test to a text column: `soft_deleted_at > now`
    compares the two strings, with now as `YYYY-MM-DD HH:MM:SS`."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        return False
    return not raw > now.strftime("%Y-%m-%d %H:%M:%S")


def _first_time(
    first: datetime | _Empty, second: datetime | _Empty, now: datetime
) -> datetime:
    for value in (first, second):
        if _is_set(value):
            assert isinstance(value, datetime)
            return value
    return now


def _go_value(value: object) -> str:
    if value is None or value == "":
        raise RowRejected("vault_value is empty")
    if not isinstance(value, str):
        raise RowRejected(f"vault_value is not text, got {type(value).__name__}")
    if len(value) > _MAX_STORED:
        raise RowRejected("vault_value is longer than any value this library reads")
    if not _goformat.is_go_value(value):
        raise RowRejected("vault_value is not in a Go VaultStore format")
    if value.startswith(_goformat.V2_PREFIX):
        try:
            _goformat.parse_v2(value)
        except DecryptionError:
            raise RowRejected("vault_value is a damaged v2 value") from None
    return value


def row_label(row: Mapping[str, Any]) -> str:
    """Name a source row in a report: by id, or by token without one."""
    raw_id = row.get("id")
    if raw_id not in (None, ""):
        return f"row {str(raw_id)[:80]}"
    token = row.get("vault_token")
    if isinstance(token, str) and token:
        return f"row with token {token[:80]}"
    return "row without id or token"

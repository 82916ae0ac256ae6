"""AsyncStore's state, lifecycle and the helpers every operation uses."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import databases

from . import _envelope, _goformat
from . import _validate as check
from ._backend import Backend
from ._dialect import is_identifier
from ._errors import (
    BackendError,
    DecryptionError,
    StoreClosedError,
    ValidationError,
    VaultStoreError,
)
from ._kdf import KdfExecutor, KdfProfile, read_limit, resolve_profile, shared_executor
from ._keys import KeyRing
from ._migrations import Names, check_not_newer, current_version, migrate
from ._policy import PasswordPolicy
from ._stats import Stats
from ._tasks import run_all

logger = logging.getLogger("vaultstore_async")


_WAL_ATTEMPTS = 50
_WAL_RETRY_SECONDS = 0.1


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


def _table_name(value: object, argument: str) -> str:
    if not is_identifier(value):
        raise ValidationError(
            f"{argument} must be a plain SQL identifier (letters, digits and"
            " underscores, not starting with a digit, at most 64 characters)"
        )
    assert isinstance(value, str)
    return value


def _non_negative_int(value: object, argument: str) -> int:
    if type(value) is not int or value < 0:
        raise ValidationError(f"{argument} must be an int >= 0, got {value!r}")
    return value


def _optional_seconds(value: object, argument: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{argument} must be a number of seconds > 0 or None")
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(f"{argument} must be a number of seconds > 0 or None")
    return float(value)


def _names(table_name: object, meta_table_name: object) -> Names:
    vault = _table_name(table_name, "table_name")
    meta = _table_name(meta_table_name, "meta_table_name")
    if vault == meta:
        raise ValidationError("table_name and meta_table_name must differ")
    names = Names(vault=vault, meta=meta)
    if meta.lower() == names.migrations.lower():
        raise ValidationError(
            f"meta_table_name must not be {names.migrations!r}, the name of the"
            " vault table's migrations table"
        )
    return names


class StoreBase:
    """Configuration, lifecycle and crypto helpers shared by the operations."""

    def __init__(
        self,
        database: str | databases.Database,
        *,
        table_name: str = "vault",
        meta_table_name: str = "vault_meta",
        automigrate: bool = True,
        kdf: KdfProfile | str | None = None,
        password_policy: PasswordPolicy | None = None,
        key_cache_size: int = 1024,
        key_cache_ttl: float | None = None,
        key_reuse_writes: int = 0,
        key_reuse_seconds: float = 60.0,
        kdf_executor: KdfExecutor | None = None,
        database_options: Mapping[str, Any] | None = None,
        max_read_kdf: KdfProfile | None = None,
        go_presets: tuple[str | tuple[int, int, int], ...] = ("default",),
        upgrade_on_read: bool = False,
    ) -> None:
        self._names = _names(table_name, meta_table_name)
        if not isinstance(automigrate, bool):
            raise ValidationError("automigrate must be a bool")
        self._automigrate = automigrate
        self._profile = resolve_profile(kdf)
        self._read_limit = read_limit(self._profile, max_read_kdf)
        self._go_presets = _goformat.resolve_presets(go_presets)
        self._go_last: _goformat.GoArgon2 | None = None
        self._upgrade_on_read = check.flag(upgrade_on_read, "upgrade_on_read")
        self._policy = (
            check.instance_or_none(password_policy, PasswordPolicy, "password_policy")
            or PasswordPolicy()
        )
        if database_options is not None and not isinstance(database_options, Mapping):
            raise ValidationError("database_options must be a mapping")
        self._stats = Stats()
        self._backend = Backend(database, self._stats, database_options)
        self._keys = KeyRing(
            check.instance_or_none(kdf_executor, KdfExecutor, "kdf_executor")
            or shared_executor(),
            self._stats,
            cache_size=_non_negative_int(key_cache_size, "key_cache_size"),
            cache_ttl=_optional_seconds(key_cache_ttl, "key_cache_ttl"),
            reuse_writes=_non_negative_int(key_reuse_writes, "key_reuse_writes"),
            reuse_seconds=_optional_seconds(key_reuse_seconds, "key_reuse_seconds")
            or 60.0,
        )
        self._state = _State.NEW
        self._lifecycle = asyncio.Lock()
        if self._profile.is_weak:
            logger.warning(
                "KDF profile opslimit=%d memlimit=%d is below the OWASP minimum"
                " for Argon2id; use it for tests only",
                self._profile.opslimit,
                self._profile.memlimit,
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(url={self._backend.url_for_logs!r},"
            f" table_name={self._names.vault!r}, state={self._state.value!r})"
        )

    # Lifecycle

    @property
    def table_name(self) -> str:
        return self._names.vault

    @property
    def meta_table_name(self) -> str:
        return self._names.meta

    @property
    def kdf(self) -> KdfProfile:
        return self._profile

    @property
    def password_policy(self) -> PasswordPolicy:
        return self._policy

    @property
    def is_connected(self) -> bool:
        return self._state is _State.OPEN

    async def connect(self) -> None:
        """Connect and, when `automigrate` is on, bring the schema up to date.

        Raises:
            StoreClosedError: the store was closed; make a new one.
            MigrationError: the schema is newer than this library supports.
            BackendError: the database could not be reached.
        """
        async with self._lifecycle:
            if self._state is _State.CLOSED:
                raise StoreClosedError(
                    "store is closed and cannot reopen; create a new one"
                )
            if self._state is _State.OPEN:
                return
            await self._backend.connect()
            try:
                await self._prepare_schema()
            except BaseException:
                await asyncio.shield(self._backend.close())
                raise
            self._stats.reset()
            self._state = _State.OPEN
        logger.info(
            "connected to %s (table %s)", self._backend.url_for_logs, self._names.vault
        )

    async def _prepare_schema(self) -> None:
        if self._backend.dialect.name == "sqlite":
            await self._enable_wal()
        if self._automigrate:
            await migrate(self._backend, self._names)
        else:
            await self._check_version()

    async def _enable_wal(self) -> None:
        """Switch the SQLite file to WAL, which lets readers run beside a
        writer and is kept in the file. The switch needs a moment with no
        other connection on the file, and SQLite does not wait for it (no
        busy timeout), so a store that starts beside others retries."""
        error: Exception | None = None
        for _ in range(_WAL_ATTEMPTS):
            row = await self._backend.fetch_one("PRAGMA journal_mode")
            if row is not None and str(row["journal_mode"]).lower() == "wal":
                return
            try:
                await self._backend.execute_ddl("PRAGMA journal_mode=WAL")
            except BackendError as exc:
                error = exc
                await asyncio.sleep(_WAL_RETRY_SECONDS)
        logger.warning("could not switch SQLite to WAL: %s", error)

    async def _check_version(self) -> None:
        check_not_newer(await current_version(self._backend, self._names))

    async def migrate(self) -> int:
        """Apply pending schema migrations and return the schema version.

        Raises:
            StoreClosedError: the store is not connected.
            MigrationError: the schema is newer than this library supports.
        """
        self._require_open()
        return await migrate(self._backend, self._names)

    async def schema_version(self) -> int:
        """Return the applied schema version (0 before any migration)."""
        self._require_open()
        return await current_version(self._backend, self._names) or 0

    async def close(self) -> None:
        """Close the store; a database the store created is disconnected.
        Calling it again does nothing."""
        async with self._lifecycle:
            if self._state is _State.CLOSED:
                return
            was_open = self._state is _State.OPEN
            self._state = _State.CLOSED
            self._keys.clear()
            if was_open:
                await self._backend.close()
                logger.info("closed store for table %s", self._names.vault)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def clear_key_cache(self) -> None:
        """Forget every cached derived key and every reusable write key."""
        self._keys.clear()

    def stats(self) -> dict[str, int]:
        """Counters since connect: key derivations, key-cache hits and
        misses, SQL statements, rows read and rows written."""
        return self._stats.snapshot()

    # Helpers for the operations

    def _require_open(self) -> None:
        if self._state is not _State.OPEN:
            if self._state is _State.CLOSED:
                raise StoreClosedError("store is closed; create a new one")
            raise StoreClosedError(
                "store is not connected; call connect() or use 'async with store'"
            )

    def _q(self, identifier: str) -> str:
        return self._backend.dialect.quote(identifier)

    @property
    def _vault(self) -> str:
        return self._q(self._names.vault)

    @property
    def _meta(self) -> str:
        return self._q(self._names.meta)

    def _db_time(self, value: datetime | None) -> Any:
        return self._backend.dialect.to_db_time(value)

    def _py_time(self, value: Any) -> datetime | None:
        try:
            return self._backend.dialect.from_db_time(value)
        except (TypeError, ValueError) as exc:
            raise BackendError(
                "a stored timestamp is not a valid time; the row was written"
                " outside this library"
            ) from exc

    def _now(self) -> datetime:
        return datetime.now(UTC)

    async def _seal(self, token: str, plaintext: bytes, password: bytes) -> str:
        salt, key = await self._keys.for_write(password, self._profile)
        return _envelope.seal(key, token, plaintext, self._profile, salt)

    async def _open(self, token: str, stored: str, password: bytes) -> str:
        ours = isinstance(stored, str) and stored.startswith(_envelope.PREFIX)
        if not ours and self._go_presets and _goformat.is_go_value(stored):
            return await self._open_go(stored, password)
        envelope = _envelope.parse(stored)
        if not self._read_limit.admits(envelope.profile):
            # A row naming a huge cost would tie up the shared derivation
            # pool, so costs above max_read_kdf count as altered data.
            raise DecryptionError()
        key = await self._keys.derive(password, envelope.salt, envelope.profile)
        data = _envelope.open_box(key, token, envelope)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError() from None

    async def _open_go(self, stored: str, password: bytes) -> str:
        """Open a value the Go library wrote (see `_goformat`).

        Go used the password's UTF-8 as typed, while this library
        normalises it to NFC first, so both forms are tried when they
        differ."""
        _goformat.require_support()
        forms = [password]
        typed = getattr(password, "as_typed", password)
        if typed != password:
            forms.append(typed)
        if not stored.startswith(_goformat.V2_PREFIX):
            for form in forms[:-1]:
                with contextlib.suppress(DecryptionError):
                    return _goformat.utf8_text(_goformat.open_legacy(stored, form))
            return _goformat.utf8_text(_goformat.open_legacy(stored, forms[-1]))
        value = _goformat.parse_v2(stored)
        for form in forms:
            for preset in _goformat.preset_order(self._go_presets, self._go_last):
                key = await self._keys.derive(form, value.salt, preset)
                plaintext = _goformat.open_v2(key, value)
                if plaintext is not None:
                    self._go_last = preset
                    return _goformat.utf8_text(plaintext)
        raise DecryptionError()

    async def _replace_values(self, writes: list[tuple[str, str, str]]) -> list[str]:
        """Write each (id, value read, new value) in one transaction, only
        where the row still has the value read, and return the ids of rows
        that a concurrent writer changed meanwhile."""
        lost: list[str] = []
        now = self._db_time(self._now())
        async with self._backend.transaction():
            for row_id, old_value, new_value in writes:
                written = await self._backend.execute(
                    f"UPDATE {self._vault} SET vault_value = :new, updated_at = :now"
                    " WHERE id = :id AND vault_value = :old",
                    {"new": new_value, "now": now, "id": row_id, "old": old_value},
                )
                if not written:
                    lost.append(row_id)
        return lost

    async def _upgrade_read(
        self, opened: list[tuple[Mapping[str, Any], str]], password: bytes
    ) -> None:
        """Re-encrypt into this library's format the Go-format rows that a
        read just opened. Each write is a compare-and-set on the value read,
        so a concurrent change wins. A failed write is logged, and the read
        still returns its values."""
        go_rows = [
            (row, value)
            for row, value in opened
            if _goformat.is_go_value(row["vault_value"])
        ]
        if not go_rows:
            return
        try:
            fresh = await run_all(
                [
                    self._seal(row["vault_token"], value.encode("utf-8"), password)
                    for row, value in go_rows
                ]
            )
            await self._replace_values(
                [
                    (row["id"], row["vault_value"], sealed)
                    for (row, _), sealed in zip(go_rows, fresh, strict=True)
                ]
            )
        except VaultStoreError as exc:
            logger.warning("could not upgrade Go-format rows after a read: %s", exc)

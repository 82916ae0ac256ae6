"""Operations over many rows: batch reads, upsert, expiry sweeps and
password change."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import _envelope, _goformat
from . import _validate as check
from ._dialect import in_list
from ._errors import (
    BackendError,
    DecryptionError,
    TokenExistsError,
    TokenNotFoundError,
    ValidationError,
)
from ._policy import encode_password
from ._record_ops import RecordOps
from ._tasks import Progress, check_progress, report_progress, run_all

logger = logging.getLogger("vaultstore_async")

# Well under SQLite's 32,766 and PostgreSQL's 32,767 bound parameters.
READ_CHUNK = 2000
CHANGE_PAGE = 500
_REKEY_RETRIES = 3
_UPSERT_ATTEMPTS = 4


class BatchOps(RecordOps):
    async def read_tokens(self, tokens: list[str], password: str) -> dict[str, str]:
        """Return {token: value} for every given token that has not expired.

        Duplicates in `tokens` are fine. Every row is opened, so a wrong
        password fails even when all tokens have expired. The first value is
        opened alone, so a wrong password costs one key derivation; the rest
        are derived concurrently in the KDF worker pool.

        Raises:
            ValidationError: `tokens` is not a list of valid tokens.
            TokenNotFoundError: some tokens are missing or soft-deleted; its
                `tokens` attribute lists them.
            DecryptionError: the password does not open one of the values.
            StoreClosedError, BackendError: as for every operation.
        """
        self._require_open()
        wanted = list(dict.fromkeys(check.tokens(tokens)))
        secret = encode_password(password)
        if not wanted:
            return {}
        rows = await self._live_rows(wanted)
        missing = [token for token in wanted if token not in rows]
        if missing:
            raise TokenNotFoundError(
                f"{len(missing)} of {len(wanted)} tokens not found", missing
            )
        items = [(token, rows[token]["vault_value"]) for token in wanted]
        values = await self._open_all(items, secret)
        now = self._now()
        result: dict[str, str] = {}
        for token, value in zip(wanted, values, strict=True):
            expires = self._py_time(rows[token]["expires_at"])
            if expires is None or expires > now:
                result[token] = value
        if self._upgrade_on_read:
            await self._upgrade_read(
                [(rows[token], result[token]) for token in result], secret
            )
        return result

    async def _live_rows(self, tokens: list[str]) -> dict[str, Mapping[str, Any]]:
        rows: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(tokens), READ_CHUNK):
            chunk = tokens[start : start + READ_CHUNK]
            placeholders, names = in_list("t", chunk)
            found = await self._backend.fetch_all(
                f"SELECT id, vault_token, vault_value, expires_at FROM {self._vault}"
                f" WHERE vault_token IN ({placeholders}) AND soft_deleted_at IS NULL",
                names,
            )
            for row in found:
                rows[row["vault_token"]] = row
        return rows

    async def _open_all(self, items: list[tuple[str, str]], secret: bytes) -> list[str]:
        first = await self._open(items[0][0], items[0][1], secret)
        rest = await run_all(
            [self._open(token, stored, secret) for token, stored in items[1:]]
        )
        return [first, *rest]

    async def resolve_tokens(
        self, mapping: Mapping[str, str], password: str
    ) -> dict[str, str]:
        """Map each key of {key: token} to its token's value, with the rules
        of `read_tokens`; keys whose token expired are left out."""
        self._require_open()
        if not isinstance(mapping, Mapping):
            kind = type(mapping).__name__
            raise ValidationError(
                f"mapping must be a mapping of key to token, got {kind}"
            )
        tokens = [
            check.token(token, f"mapping[{key!r}]") for key, token in mapping.items()
        ]
        values = await self.read_tokens(tokens, password)
        return {key: values[token] for key, token in mapping.items() if token in values}

    async def upsert_token(
        self,
        token: str | None,
        value: str,
        password: str,
        *,
        length: int = 32,
        expires_at: datetime | None = None,
    ) -> str:
        """Create or update, and return the token.

        None or "" creates a new generated token. A live token is updated
        under the rules of `update_token` (and gets `expires_at` if one is
        given). An unknown token is created as a custom token. Concurrent
        upserts of one new token end with one row.

        Raises:
            DecryptionError: the token is live and `password` does not open it.
            TokenExistsError: a soft-deleted row has the token; restore or
                delete it first.
            PasswordPolicyError: the password breaks the policy.
            ValidationError, StoreClosedError, BackendError: as for every
                operation.
        """
        self._require_open()
        if token is None or token == "":
            return await self.create_token(
                value, password, length=length, expires_at=expires_at
            )
        token = check.token(token)
        plaintext = check.value_bytes(value)
        check.token_length(length)
        expires = check.aware_time(expires_at, "expires_at")
        secret = self._writing_password(password)
        for _ in range(_UPSERT_ATTEMPTS):
            if await self.token_exists(token):
                try:
                    await self._replace_value(
                        token, plaintext, secret, secret, expires, expires is not None
                    )
                    return token
                except TokenNotFoundError:
                    continue  # deleted meanwhile: try to create it
            try:
                await self.create_custom_token(
                    token, value, password, expires_at=expires
                )
                return token
            except TokenExistsError:
                holder = await self.find_record_by_token(
                    token, include_soft_deleted=True
                )
                if holder is not None and holder.soft_deleted_at is not None:
                    raise  # a soft-deleted row has the token
        raise BackendError("token kept changing under concurrent writers; try again")

    async def soft_delete_expired_tokens(self) -> int:
        """Soft-delete every live expired token in one statement; return how many."""
        self._require_open()
        now = self._db_time(self._now())
        return await self._backend.execute(
            f"UPDATE {self._vault} SET soft_deleted_at = :now, updated_at = :now"
            " WHERE expires_at IS NOT NULL AND expires_at <= :now"
            " AND soft_deleted_at IS NULL",
            {"now": now},
        )

    async def delete_expired_tokens(self) -> int:
        """Delete every expired row, soft-deleted ones too, in one statement;
        return how many."""
        self._require_open()
        return await self._backend.execute(
            f"DELETE FROM {self._vault}"
            " WHERE expires_at IS NOT NULL AND expires_at <= :now",
            {"now": self._db_time(self._now())},
        )

    async def change_password(
        self,
        old_password: str,
        new_password: str,
        *,
        progress: Progress | None = None,
    ) -> int:
        """Re-encrypt under `new_password` every row that `old_password`
        opens, soft-deleted and expired rows included; return how many.

        The table is read in keyset pages ordered by id, so memory stays
        bounded. Each row is written only if its value is still the one
        that was read, so a concurrent update is never overwritten. If the
        call stops part way, every row is readable under exactly one of the
        two passwords and running it again finishes the job. `progress`, if
        given, is called after each page with (rows examined, rows changed).

        Raises:
            PasswordPolicyError: `new_password` breaks the policy.
            GoSupportMissingError: the table has Go VaultStore values and the
                `go` extra is not installed.
        """
        self._require_open()
        old = encode_password(old_password, "old_password")
        new = self._writing_password(new_password, "new_password")
        check_progress(progress)
        changed, examined = await self._rekey_all(old, new, progress, go_only=False)
        logger.info("password change re-encrypted %d of %d rows", changed, examined)
        return changed

    async def upgrade_format(
        self, password: str, *, progress: Progress | None = None
    ) -> int:
        """Re-encrypt into this library's format every Go VaultStore value
        that `password` opens, soft-deleted and expired rows included, and
        return how many.

        The password stays the same, so the password policy is not applied
        (the rows are already under it). Paging, compare-and-set and
        resuming work as in `change_password`, and `progress` gets
        (Go-format rows examined, rows changed). Rows under other passwords
        stay as they are.

        Raises:
            GoSupportMissingError: the `go` extra is not installed.
            ValidationError: the store was made with `go_presets=()`.
            ValidationError, StoreClosedError, BackendError: as for every
                operation.
        """
        self._require_open()
        secret = encode_password(password)
        check_progress(progress)
        if not self._go_presets:
            raise ValidationError(
                "go_presets is empty, so this store reads no Go values. Pass"
                " the presets the Go service used"
            )
        _goformat.require_support()
        changed, examined = await self._rekey_all(
            secret, secret, progress, go_only=True
        )
        logger.info(
            "format upgrade re-encrypted %d of %d Go-format rows", changed, examined
        )
        return changed

    async def _rekey_all(
        self, old: bytes, new: bytes, progress: Progress | None, go_only: bool
    ) -> tuple[int, int]:
        """Re-encrypt, page by page, the rows `old` opens, and return (rows
        changed, rows examined)."""
        examined = changed = 0
        last_id: str | None = None
        while True:
            page = await self._page_after(last_id, go_only)
            if not page:
                break
            last_id = page[-1]["id"]
            changed += await self._rekey_with_retries(page, old, new, go_only)
            examined += len(page)
            await report_progress(progress, examined, changed)
            if len(page) < CHANGE_PAGE:
                break
        return changed, examined

    async def _rekey_with_retries(
        self, page: list[Mapping[str, Any]], old: bytes, new: bytes, go_only: bool
    ) -> int:
        changed, lost = await self._rekey_page(page, old, new)
        for _ in range(_REKEY_RETRIES):
            if not lost:
                break
            # A concurrent writer changed these rows after they were read:
            # read them again and re-encrypt what is still under `old`.
            rows = await self._rows_by_id(lost)
            if go_only:
                rows = [r for r in rows if _goformat.is_go_value(r["vault_value"])]
            done, lost = await self._rekey_page(rows, old, new)
            changed += done
        if lost:
            logger.warning(
                "password change skipped %d rows that kept changing under"
                " concurrent writers; run it again to finish them",
                len(lost),
            )
        return changed

    async def _rows_by_id(self, ids: list[str]) -> list[Mapping[str, Any]]:
        placeholders, names = in_list("i", ids)
        return await self._backend.fetch_all(
            f"SELECT id, vault_token, vault_value FROM {self._vault}"
            f" WHERE id IN ({placeholders})",
            names,
        )

    async def _page_after(
        self, last_id: str | None, go_only: bool = False
    ) -> list[Mapping[str, Any]]:
        clauses = []
        values: dict[str, Any] = {}
        if last_id is not None:
            clauses.append("id > :last_id")
            values["last_id"] = last_id
        if go_only:
            # Compared as text, not with LIKE, which SQLite folds to lower case.
            clauses.append("SUBSTR(vault_value, 1, 4) <> :ours")
            values["ours"] = _envelope.PREFIX
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return await self._backend.fetch_all(
            f"SELECT id, vault_token, vault_value FROM {self._vault}{where}"
            f" ORDER BY id LIMIT {CHANGE_PAGE}",
            values,
        )

    async def _rekey_row(
        self, row: Mapping[str, Any], old: bytes, new: bytes
    ) -> tuple[str, str, str] | None:
        token, stored = row["vault_token"], row["vault_value"]
        try:
            plaintext = await self._open(token, stored, old)
        except DecryptionError:
            return None  # under another password, or damaged: left as it is
        sealed = await self._seal(token, plaintext.encode("utf-8"), new)
        return row["id"], stored, sealed

    async def _rekey_page(
        self, page: list[Mapping[str, Any]], old: bytes, new: bytes
    ) -> tuple[int, list[str]]:
        """Re-encrypt the rows `old` opens; return (rows written, ids whose
        compare-and-set failed)."""
        results = await run_all([self._rekey_row(row, old, new) for row in page])
        writes = [result for result in results if result is not None]
        if not writes:
            return 0, []
        lost = await self._replace_values(writes)
        return len(writes) - len(lost), lost

"""Token operations: create, read, update, renew, delete, restore."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import _envelope
from . import _validate as check
from ._backend import UniqueViolation
from ._base import StoreBase
from ._dialect import derived_name
from ._errors import (
    BackendError,
    TokenExistsError,
    TokenExpiredError,
    TokenNotFoundError,
)
from ._policy import encode_password
from ._tokens import generate_id, generate_token

_CREATE_ATTEMPTS = 8
# Each failed attempt means another writer succeeded, so progress is certain;
# the bound only stops a writer starving under heavy contention.
_UPDATE_ATTEMPTS = 32


def _not_found() -> TokenNotFoundError:
    return TokenNotFoundError("token not found")


class TokenOps(StoreBase):
    def _is_token_clash(self, exc: UniqueViolation) -> bool:
        detail = exc.detail
        unique = derived_name(self._names.vault, "token_key")
        return unique in detail or detail.endswith("vault_token")

    def _writing_password(self, password: str, argument: str = "password") -> bytes:
        self._policy.check(password, argument)
        return encode_password(password, argument)

    async def _insert(
        self,
        token: str,
        stored: str,
        expires_at: datetime | None,
    ) -> None:
        now = self._db_time(self._now())
        await self._backend.execute(
            f"INSERT INTO {self._vault} (id, vault_token, vault_value, created_at,"
            " updated_at, expires_at, soft_deleted_at) VALUES (:id, :token,"
            " :value, :now, :now, :expires_at, NULL)",
            {
                "id": generate_id(),
                "token": token,
                "value": stored,
                "now": now,
                "expires_at": self._db_time(expires_at),
            },
        )

    async def create_token(
        self,
        value: str,
        password: str,
        *,
        length: int = 32,
        expires_at: datetime | None = None,
    ) -> str:
        """Encrypt `value` under `password`, store it and return a new token.

        The token is `tk_` plus random characters, `length` characters in
        all (15 to 40). A time in the past for `expires_at` is accepted: the
        token is then born expired.

        Raises:
            ValidationError: an argument has the wrong type or size.
            PasswordPolicyError: the password breaks the policy.
            BackendError: the database failed.
        """
        self._require_open()
        plaintext = check.value_bytes(value)
        length = check.token_length(length)
        expires = check.aware_time(expires_at, "expires_at")
        secret = self._writing_password(password)
        salt, key = await self._keys.for_write(secret, self._profile)
        for _ in range(_CREATE_ATTEMPTS):
            token = generate_token(length)
            stored = _envelope.seal(key, token, plaintext, self._profile, salt)
            try:
                await self._insert(token, stored, expires)
            except UniqueViolation as exc:
                if self._is_token_clash(exc):
                    continue
                raise
            return token
        raise BackendError(
            f"could not find a free token in {_CREATE_ATTEMPTS} tries;"
            " use a longer length"
        )

    async def create_custom_token(
        self,
        token: str,
        value: str,
        password: str,
        *,
        expires_at: datetime | None = None,
    ) -> None:
        """Store `value` under a token the caller chose.

        Raises:
            ValidationError: an argument has the wrong type or size.
            PasswordPolicyError: the password breaks the policy.
            TokenExistsError: a row, soft-deleted or not, has the token.
        """
        self._require_open()
        token = check.token(token)
        plaintext = check.value_bytes(value)
        expires = check.aware_time(expires_at, "expires_at")
        secret = self._writing_password(password)
        stored = await self._seal(token, plaintext, secret)
        try:
            await self._insert(token, stored, expires)
        except UniqueViolation as exc:
            if self._is_token_clash(exc):
                raise TokenExistsError("token already exists") from None
            raise

    async def _live_row(self, token: str) -> Any:
        return await self._backend.fetch_one(
            f"SELECT id, vault_token, vault_value, expires_at FROM {self._vault}"
            " WHERE vault_token = :token AND soft_deleted_at IS NULL",
            {"token": token},
        )

    async def read_token(self, token: str, password: str) -> str:
        """Return the value stored under `token`.

        Raises:
            TokenNotFoundError: no live row has the token.
            DecryptionError: the password is wrong or the data was altered.
            TokenExpiredError: the token has expired (only after the password
                has opened the value, so expiry is not revealed without it).
        """
        self._require_open()
        token = check.token(token)
        secret = encode_password(password)
        row = await self._live_row(token)
        if row is None:
            raise _not_found()
        value = await self._open(token, row["vault_value"], secret)
        expires = self._py_time(row["expires_at"])
        if expires is not None and expires <= self._now():
            raise TokenExpiredError("token has expired")
        if self._upgrade_on_read:
            await self._upgrade_read([(row, value)], secret)
        return value

    async def update_token(
        self,
        token: str,
        value: str,
        password: str,
        *,
        new_password: str | None = None,
    ) -> None:
        """Replace the value of a live token; its expiry is kept.

        `password` must open the current value. With `new_password` the new
        value is encrypted under it, otherwise under `password`. The write
        is a compare-and-set on the value that was read, so a concurrent
        writer is never silently overwritten.

        Raises:
            TokenNotFoundError: no live row has the token.
            DecryptionError: `password` does not open the current value.
            PasswordPolicyError: the password that will encrypt breaks the policy.
        """
        self._require_open()
        token = check.token(token)
        plaintext = check.value_bytes(value)
        if new_password is None:
            current = self._writing_password(password)
            target = current
        else:
            current = encode_password(password)
            target = self._writing_password(new_password, "new_password")
        await self._replace_value(token, plaintext, current, target)

    async def _replace_value(
        self,
        token: str,
        plaintext: bytes,
        current: bytes,
        target: bytes,
        expires_at: datetime | None = None,
        set_expiry: bool = False,
    ) -> None:
        expiry_sql = ", expires_at = :expires_at" if set_expiry else ""
        stored: str | None = None
        for _ in range(_UPDATE_ATTEMPTS):
            row = await self._live_row(token)
            if row is None:
                raise _not_found()
            old = row["vault_value"]
            await self._open(token, old, current)
            if stored is None:
                # Sealed only once `current` has opened the stored value, so a
                # wrong password costs one derivation; retries reuse it.
                stored = await self._seal(token, plaintext, target)
            values: dict[str, Any] = {
                "value": stored,
                "now": self._db_time(self._now()),
                "id": row["id"],
                "old": old,
            }
            if set_expiry:
                values["expires_at"] = self._db_time(expires_at)
            changed = await self._backend.execute(
                f"UPDATE {self._vault} SET vault_value = :value,"
                f" updated_at = :now{expiry_sql}"
                " WHERE id = :id AND vault_value = :old AND soft_deleted_at IS NULL",
                values,
            )
            if changed:
                return
        raise BackendError(
            "token kept changing under concurrent writers; try the update again"
        )

    async def token_exists(self, token: str) -> bool:
        """Return True if a row that is not soft-deleted has the token (expired
        tokens exist until they are swept)."""
        self._require_open()
        token = check.token(token)
        row = await self._backend.fetch_one(
            f"SELECT 1 AS found FROM {self._vault}"
            " WHERE vault_token = :token AND soft_deleted_at IS NULL",
            {"token": token},
        )
        return row is not None

    async def renew_token(self, token: str, expires_at: datetime | None) -> None:
        """Set a live token's expiry; None means it never expires.

        Raises:
            TokenNotFoundError: no live row has the token.
        """
        self._require_open()
        token = check.token(token)
        expires = check.aware_time(expires_at, "expires_at")
        changed = await self._backend.execute(
            f"UPDATE {self._vault} SET expires_at = :expires_at, updated_at = :now"
            " WHERE vault_token = :token AND soft_deleted_at IS NULL",
            {
                "expires_at": self._db_time(expires),
                "now": self._db_time(self._now()),
                "token": token,
            },
        )
        if not changed:
            raise _not_found()

    async def delete_token(self, token: str) -> bool:
        """Delete the row with `token`, soft-deleted or not; return whether
        a row was deleted."""
        self._require_open()
        token = check.token(token)
        return await self._delete_by("vault_token", token)

    async def soft_delete_token(self, token: str) -> None:
        """Hide a live token from reads until `restore_token`.

        Raises:
            TokenNotFoundError: no live row has the token.
        """
        self._require_open()
        token = check.token(token)
        if not await self._soft_delete_by("vault_token", token):
            raise _not_found()

    async def _delete_by(self, column: str, value: str) -> bool:
        deleted = await self._backend.execute(
            f"DELETE FROM {self._vault} WHERE {column} = :value", {"value": value}
        )
        return deleted > 0

    async def _soft_delete_by(self, column: str, value: str) -> bool:
        """Soft-delete the live row whose `column` equals `value`; return
        whether one was changed."""
        now = self._db_time(self._now())
        changed = await self._backend.execute(
            f"UPDATE {self._vault} SET soft_deleted_at = :now, updated_at = :now"
            f" WHERE {column} = :value AND soft_deleted_at IS NULL",
            {"now": now, "value": value},
        )
        return changed > 0

    async def restore_token(self, token: str) -> None:
        """Undo a soft delete.

        Raises:
            TokenNotFoundError: no soft-deleted row has the token.
        """
        self._require_open()
        token = check.token(token)
        changed = await self._backend.execute(
            f"UPDATE {self._vault} SET soft_deleted_at = NULL, updated_at = :now"
            " WHERE vault_token = :token AND soft_deleted_at IS NOT NULL",
            {"now": self._db_time(self._now()), "token": token},
        )
        if not changed:
            raise TokenNotFoundError("no soft-deleted token to restore")

"""Exception tree of vaultstore_async.

VaultStoreError
├── ValidationError (also ValueError)
│   └── PasswordPolicyError
├── StoreClosedError (also RuntimeError)
├── MigrationError
├── TokenNotFoundError
├── TokenExistsError
├── TokenExpiredError
├── DecryptionError
├── GoSupportMissingError
└── BackendError

No message carries a password, a plaintext, a key or a ciphertext.
"""

from __future__ import annotations

from collections.abc import Iterable


class VaultStoreError(Exception):
    """Base class of every error this library raises."""


class ValidationError(VaultStoreError, ValueError):
    """An argument has the wrong type, size or form."""


class PasswordPolicyError(ValidationError):
    """A password given for a write breaks the store's password policy."""


class StoreClosedError(VaultStoreError, RuntimeError):
    """The store is not connected, or it was closed and cannot reopen."""


class MigrationError(VaultStoreError):
    """The schema could not be brought to the version this library needs."""


class TokenNotFoundError(VaultStoreError):
    """No live row has the token (or id). `tokens` lists a batch's missing ones."""

    def __init__(self, message: str, tokens: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.tokens: list[str] = list(tokens)


class TokenExistsError(VaultStoreError):
    """A row, soft-deleted or not, already has the token."""


class TokenExpiredError(VaultStoreError):
    """The token's expiry time has passed (raised only after the password opened it)."""


class DecryptionError(VaultStoreError):
    """The password is wrong or the stored value was altered."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or DECRYPTION_FAILED)


class GoSupportMissingError(VaultStoreError):
    """A Go VaultStore value was met but the `go` extra is not installed."""


class BackendError(VaultStoreError):
    """The database failed; the driver error is chained as __cause__."""


DECRYPTION_FAILED = "decryption failed: wrong password or altered data"

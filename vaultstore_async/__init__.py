"""vaultstore_async: encrypted secrets at rest in a SQL database, for asyncio."""

from ._errors import (
    BackendError,
    DecryptionError,
    GoSupportMissingError,
    MigrationError,
    PasswordPolicyError,
    StoreClosedError,
    TokenExistsError,
    TokenExpiredError,
    TokenNotFoundError,
    ValidationError,
    VaultStoreError,
)
from ._goimport import GoImportRejection, GoImportReport
from ._kdf import KdfExecutor, KdfProfile
from ._policy import PasswordPolicy
from ._query import Record, RecordQuery
from ._store import AsyncStore, import_go
from ._validate import MAX_VALUE_BYTES

__version__ = "0.1.0"

__all__ = [
    "AsyncStore",
    "BackendError",
    "DecryptionError",
    "GoImportRejection",
    "GoImportReport",
    "GoSupportMissingError",
    "KdfExecutor",
    "KdfProfile",
    "MAX_VALUE_BYTES",
    "MigrationError",
    "PasswordPolicy",
    "PasswordPolicyError",
    "Record",
    "RecordQuery",
    "StoreClosedError",
    "TokenExistsError",
    "TokenExpiredError",
    "TokenNotFoundError",
    "ValidationError",
    "VaultStoreError",
    "import_go",
]

"""Vault settings: the caller's own key/value pairs in the meta table.

The schema version lives in a separate migrations table, so every row
here belongs to the caller.
"""

from __future__ import annotations

from . import _validate as check
from ._batch import BatchOps
from ._errors import ValidationError

MAX_SETTING_BYTES = 1024 * 1024


def setting_value(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"value must be a str, got {type(value).__name__}")
    if "\x00" in value:
        raise ValidationError(
            "value must not contain NUL characters (PostgreSQL cannot store them)"
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError(
            "value must be valid Unicode text (it contains a lone surrogate)"
        ) from None
    if size > MAX_SETTING_BYTES:
        raise ValidationError(
            f"value must be at most {MAX_SETTING_BYTES} bytes in UTF-8, got {size}"
        )
    return value


class SettingsOps(BatchOps):
    async def get_setting(self, key: str) -> str | None:
        """Return the setting's value, or None when it is not set."""
        self._require_open()
        key = check.identifier_text(key, "key", check.MAX_KEY_LENGTH)
        row = await self._backend.fetch_one(
            f"SELECT meta_value FROM {self._meta} WHERE meta_key = :key", {"key": key}
        )
        return None if row is None else str(row["meta_value"])

    async def set_setting(self, key: str, value: str) -> None:
        """Set a setting in one atomic upsert (never two rows for a key)."""
        self._require_open()
        key = check.identifier_text(key, "key", check.MAX_KEY_LENGTH)
        value = setting_value(value)
        await self._backend.execute(
            self._backend.dialect.upsert_setting(self._meta),
            {"key": key, "value": value, "now": self._db_time(self._now())},
        )

    async def delete_setting(self, key: str) -> bool:
        """Delete a setting; return whether it existed."""
        self._require_open()
        key = check.identifier_text(key, "key", check.MAX_KEY_LENGTH)
        deleted = await self._backend.execute(
            f"DELETE FROM {self._meta} WHERE meta_key = :key", {"key": key}
        )
        return deleted > 0

    async def list_settings(self) -> dict[str, str]:
        """Return every setting as {key: value}, ordered by key."""
        self._require_open()
        rows = await self._backend.fetch_all(
            f"SELECT meta_key, meta_value FROM {self._meta} ORDER BY meta_key"
        )
        return {str(row["meta_key"]): str(row["meta_value"]) for row in rows}

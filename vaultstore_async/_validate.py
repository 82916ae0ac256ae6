"""Argument checks shared by the public methods.

Messages name the argument, what was expected and the type or length that
arrived. They never repeat a value, because a value may be a secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

from ._errors import ValidationError

T = TypeVar("T")

MAX_TOKEN_LENGTH = 255
MAX_KEY_LENGTH = 255
MIN_GENERATED_LENGTH = 15
MAX_GENERATED_LENGTH = 40
# Plaintext limit in UTF-8 bytes. The stored text is about 4/3 of it plus
# 130 bytes, which stays well inside MariaDB's default 16 MiB packet.
MAX_VALUE_BYTES = 4 * 1024 * 1024

_EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def _type_name(value: object) -> str:
    return type(value).__name__


def identifier_text(value: object, argument: str, max_length: int) -> str:
    """Check a token, record id or setting key: non-empty text that every
    backend stores and compares exactly."""
    if not isinstance(value, str):
        raise ValidationError(f"{argument} must be a str, got {_type_name(value)}")
    if value == "":
        raise ValidationError(f"{argument} must not be empty")
    if len(value) > max_length:
        raise ValidationError(
            f"{argument} must be at most {max_length} characters, got {len(value)}"
        )
    if "\x00" in value:
        raise ValidationError(
            f"{argument} must not contain NUL characters (PostgreSQL cannot store them)"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"{argument} must be valid Unicode text (it contains a lone surrogate)"
        ) from None
    return value


def token(value: object, argument: str = "token") -> str:
    return identifier_text(value, argument, MAX_TOKEN_LENGTH)


def tokens(values: object, argument: str = "tokens") -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValidationError(
            f"{argument} must be a list of str, got {_type_name(values)}"
        )
    checked = []
    for index, item in enumerate(values):
        checked.append(token(item, f"{argument}[{index}]"))
    return checked


def value_bytes(value: object, argument: str = "value") -> bytes:
    if not isinstance(value, str):
        raise ValidationError(f"{argument} must be a str, got {_type_name(value)}")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"{argument} must be valid Unicode text (it contains a lone surrogate)"
        ) from None
    if len(data) > MAX_VALUE_BYTES:
        raise ValidationError(
            f"{argument} must be at most {MAX_VALUE_BYTES} bytes in UTF-8,"
            f" got {len(data)}"
        )
    return data


def aware_time(
    value: object, argument: str, *, optional: bool = True
) -> datetime | None:
    if value is None and optional:
        return None
    if not isinstance(value, datetime):
        expected = (
            "a timezone-aware datetime or None"
            if optional
            else ("a timezone-aware datetime")
        )
        raise ValidationError(f"{argument} must be {expected}, got {_type_name(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            f"{argument} must be timezone-aware (for example"
            " datetime.now(timezone.utc)), got a naive datetime"
        )
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationError(
            f"{argument} must fall between years 1000 and 9999 in UTC"
        ) from None
    if not _EARLIEST <= utc <= _LATEST:
        raise ValidationError(
            f"{argument} must fall between years 1000 and 9999 in UTC"
        )
    return utc


def token_length(value: object) -> int:
    if type(value) is not int:
        raise ValidationError(f"length must be an int, got {_type_name(value)}")
    if not MIN_GENERATED_LENGTH <= value <= MAX_GENERATED_LENGTH:
        raise ValidationError(
            f"length must be between {MIN_GENERATED_LENGTH} and"
            f" {MAX_GENERATED_LENGTH}, got {value}"
        )
    return value


def flag(value: object, argument: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{argument} must be a bool, got {_type_name(value)}")
    return value


def instance_or_none(value: object, cls: type[T], argument: str) -> T | None:
    """Return `value` if it is a `cls` or None; raise ValidationError otherwise."""
    if value is None or isinstance(value, cls):
        return value
    raise ValidationError(
        f"{argument} must be a {cls.__name__} or None, got {_type_name(value)}"
    )

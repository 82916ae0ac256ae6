"""Token and record-id generation."""

from __future__ import annotations

import secrets
import time

TOKEN_PREFIX = "tk_"
# Lower-case letters and digits: safe in URLs, file names and
# case-insensitive systems; 5.17 bits a character.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def generate_token(length: int) -> str:
    """Return `tk_` plus random characters, `length` characters in all."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(length - len(TOKEN_PREFIX)))
    return TOKEN_PREFIX + body


def generate_id() -> str:
    """Return a 32-character id that sorts by creation time: 16 hex digits
    of nanoseconds since the epoch, then 16 random hex digits."""
    return f"{time.time_ns():016x}{secrets.token_hex(8)}"

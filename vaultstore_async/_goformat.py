"""Values written by the Go VaultStore library, read-only.

Two formats exist in Go tables:

- `v2:` then URL-safe base64 (with padding) of salt (16 bytes), nonce
  (12 bytes) and the AES-256-GCM ciphertext with its tag. The key is
  Argon2id(password, salt) with the writer's time, memory and lane counts,
  which the value does not record, so a reader tries the presets it is
  given. No associated data: the value is not bound to its token.
- legacy: any other text. A 200-character key made from the password with
  MD5, SHA-1 and SHA-256 is XORed over base64 text. There is no salt and no
  integrity check, so this is obfuscation rather than encryption.

libsodium's Argon2id runs one lane, and Go's presets use two or four, so
keys come from argon2-cffi and AES-GCM from `cryptography`.
Both arrive with the `go` extra and are imported only when a Go-format
value is opened. Every malformed input ends in DecryptionError.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ._errors import (
    DecryptionError,
    GoSupportMissingError,
    ValidationError,
    VaultStoreError,
)
from ._kdf import OPSLIMIT_MAX

V2_PREFIX = "v2:"
_SALT_BYTES = 16
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_BYTES = 32
_LEGACY_KEY_CHARS = 200

# Go's URL-safe base64 with padding. A legacy value is this text with no
# prefix, and a v2 value has it after `v2:`.
_PADDED_B64URL = re.compile(
    r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?"
)
_PADDED_B64STD = re.compile(
    r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
)
# Go's strconv.Atoi: an optional sign and ASCII digits, within int64.
_GO_INT = re.compile(rb"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1
_INT64_DIGITS = len(str(_INT64_MAX))

_MAX_LANES = 255
_MIN_MEMORY_KIB_PER_LANE = 8
_MAX_MEMORY_KIB = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class GoArgon2:
    """One Go Argon2id setting: passes, memory in KiB and lanes."""

    time: int
    memory_kib: int
    lanes: int

    @property
    def memlimit(self) -> int:
        """Memory in bytes, as the derivation pool budgets it."""
        return self.memory_kib * 1024

    def derive(self, password: bytes, salt: bytes) -> bytes:
        low_level = _argon2()
        try:
            key: bytes = low_level.hash_secret_raw(
                password,
                salt,
                time_cost=self.time,
                memory_cost=self.memory_kib,
                parallelism=self.lanes,
                hash_len=_KEY_BYTES,
                type=low_level.Type.ID,
                version=19,
            )
        except low_level.HashingError as exc:
            raise VaultStoreError(
                f"key derivation failed: Argon2id with {self.memory_kib} KiB"
                f" and {self.lanes} lanes could not run"
            ) from exc
        return key


GO_PRESETS: dict[str, GoArgon2] = {
    "default": GoArgon2(time=3, memory_kib=65536, lanes=4),
    "lightweight": GoArgon2(time=2, memory_kib=32768, lanes=2),
    "high": GoArgon2(time=4, memory_kib=131072, lanes=4),
}


def resolve_presets(presets: object) -> tuple[GoArgon2, ...]:
    """Check the `go_presets` option: a tuple or list of preset names or
    (time, memory_kib, lanes) tuples. An empty one turns Go reads off."""
    names = ", ".join(GO_PRESETS)
    expected = (
        f"go_presets must be a tuple of preset names ({names}) or"
        " (time, memory_kib, lanes) tuples, or () to read no Go values"
    )
    if not isinstance(presets, (tuple, list)):
        raise ValidationError(f"{expected}, got {type(presets).__name__}")
    resolved: list[GoArgon2] = []
    for index, item in enumerate(presets):
        where = f"go_presets[{index}]"
        if isinstance(item, str):
            if item not in GO_PRESETS:
                raise ValidationError(f"{where} must be one of {names}, got {item!r}")
            resolved.append(GO_PRESETS[item])
        elif isinstance(item, tuple) and len(item) == 3:
            resolved.append(_custom_preset(item, where))
        else:
            raise ValidationError(
                f"{where} must be a preset name or a (time, memory_kib, lanes)"
                f" tuple, got {type(item).__name__}"
            )
    return tuple(dict.fromkeys(resolved))


def _custom_preset(item: tuple[Any, ...], where: str) -> GoArgon2:
    if any(type(part) is not int for part in item):
        raise ValidationError(f"{where} must be three ints (time, memory_kib, lanes)")
    time, memory_kib, lanes = item
    if not 1 <= lanes <= _MAX_LANES:
        raise ValidationError(f"{where}: lanes must be 1 to {_MAX_LANES}, got {lanes}")
    if not 1 <= time <= OPSLIMIT_MAX:
        raise ValidationError(f"{where}: time must be 1 to {OPSLIMIT_MAX}, got {time}")
    low = _MIN_MEMORY_KIB_PER_LANE * lanes
    if not low <= memory_kib <= _MAX_MEMORY_KIB:
        raise ValidationError(
            f"{where}: memory_kib must be {low} to {_MAX_MEMORY_KIB} for"
            f" {lanes} lanes, got {memory_kib}"
        )
    return GoArgon2(time=time, memory_kib=memory_kib, lanes=lanes)


def _extra(*modules: str) -> list[ModuleType]:
    """Import modules of the `go` extra, naming the extra when one is missing.

    Each top-level package is imported first, so a package hidden from
    sys.modules counts as missing even when a submodule is still cached.
    """
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name.partition(".")[0])
            loaded.append(importlib.import_module(name))
        except ImportError as exc:
            raise GoSupportMissingError(
                "reading Go VaultStore values needs the 'go' extra:"
                " pip install 'vaultstore_async[go]'"
            ) from exc
    return loaded


def _argon2() -> Any:
    return _extra("argon2.low_level")[0]


def require_support() -> None:
    """Raise GoSupportMissingError unless the `go` extra is installed."""
    _extra("argon2.low_level", "cryptography.hazmat.primitives.ciphers.aead")


def is_go_value(stored: object) -> bool:
    """True for text shaped like a Go value: `v2:` or legacy base64."""
    if not isinstance(stored, str) or stored == "":
        return False
    if stored.startswith(V2_PREFIX):
        return True
    return _PADDED_B64URL.fullmatch(stored) is not None


def _b64url_padded(text: str | bytes) -> bytes:
    """Decode URL-safe base64 with padding and reject any other alphabet."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if not raw.isascii() or len(raw) % 4:
        raise DecryptionError()
    if not _PADDED_B64URL.fullmatch(raw.decode("ascii")):
        raise DecryptionError()
    try:
        return base64.urlsafe_b64decode(raw)
    except (binascii.Error, ValueError):
        raise DecryptionError() from None


@dataclass(frozen=True, slots=True)
class V2Value:
    salt: bytes
    nonce: bytes
    sealed: bytes

    def __repr__(self) -> str:
        return f"V2Value(sealed_bytes={len(self.sealed)})"


def parse_v2(stored: str) -> V2Value:
    if not stored.startswith(V2_PREFIX):
        raise DecryptionError()
    body = stored[len(V2_PREFIX) :]
    if not body.isascii():
        raise DecryptionError()
    data = _b64url_padded(body)
    if len(data) < _SALT_BYTES + _NONCE_BYTES + _TAG_BYTES:
        raise DecryptionError()
    return V2Value(
        salt=data[:_SALT_BYTES],
        nonce=data[_SALT_BYTES : _SALT_BYTES + _NONCE_BYTES],
        sealed=data[_SALT_BYTES + _NONCE_BYTES :],
    )


def open_v2(key: bytes, value: V2Value) -> bytes | None:
    """Return the plaintext, or None when this key does not open the value."""
    (aead,) = _extra("cryptography.hazmat.primitives.ciphers.aead")
    exceptions = importlib.import_module("cryptography.exceptions")
    try:
        plaintext: bytes = aead.AESGCM(key).decrypt(value.nonce, value.sealed, None)
    except exceptions.InvalidTag:
        return None
    return plaintext


def _hex(function: Any, text: str) -> str:
    digest: str = function(text.encode("utf-8")).hexdigest()
    return digest


def legacy_key(password: bytes) -> bytes:
    """Return the 200-character XOR key the Go library made from a password."""
    text = password.decode("utf-8")
    md5, sha1, sha256 = hashlib.md5, hashlib.sha1, hashlib.sha256
    a = _hex(sha256, _hex(md5, text) * 4)
    b = _hex(sha1, a) * 3
    c = _hex(sha1, b) + _hex(md5, b) + _hex(sha1, b)
    d = _hex(sha256, c)
    key = (
        _hex(sha1, d)
        + _hex(sha256, _hex(md5, d))
        + _hex(sha256, _hex(sha1, d))
        + _hex(md5, d)
    )
    assert len(key) == _LEGACY_KEY_CHARS
    return key.encode("ascii")


def _xor(data: bytes, key: bytes) -> bytes:
    """XOR `data` with `key` repeated, in one big-integer operation. A loop
    over the bytes in Python took 1.3 s for a 7.4 MB value on a test machine."""
    stream = (key * (len(data) // len(key) + 1))[: len(data)]
    mixed = int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")
    return mixed.to_bytes(len(data), "big")


def open_legacy(stored: str, password: bytes) -> bytes:
    """Decode a legacy value. A wrong password or damaged text raises
    DecryptionError, and every length and index is checked before use."""
    if not stored.isascii():
        raise DecryptionError()
    outer = _xor(_b64url_padded(stored), legacy_key(password))
    try:
        text = outer.decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError() from None
    if text == "" or not _PADDED_B64STD.fullmatch(text):
        raise DecryptionError()
    framed = _b64url_padded(text)
    length_text, separator, rest = framed.partition(b"_")
    if not separator or not _GO_INT.fullmatch(length_text):
        raise DecryptionError()
    # Go's Atoi accepts leading zeros and fails beyond int64. Python refuses
    # to convert more than 4,300 digits, so only the significant ones are.
    digits = length_text.lstrip(b"+-").lstrip(b"0") or b"0"
    if len(digits) > _INT64_DIGITS:
        raise DecryptionError()
    length = -int(digits) if length_text.startswith(b"-") else int(digits)
    if not 0 <= length <= min(len(rest), _INT64_MAX):
        raise DecryptionError()
    return _b64url_padded(rest[:length])


def utf8_text(plaintext: bytes) -> str:
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError(
            "decryption succeeded but the Go value is not UTF-8 text"
        ) from None


def preset_order(presets: Iterable[GoArgon2], first: GoArgon2 | None) -> list[GoArgon2]:
    """Return the presets to try, starting with the one that last opened a value."""
    ordered = list(presets)
    if first is not None and first in ordered:
        ordered.remove(first)
        ordered.insert(0, first)
    return ordered

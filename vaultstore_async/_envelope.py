"""The stored value format.

A stored value is ASCII text, so no driver ever receives bytes:

    vs1:argon2id:<opslimit>:<memlimit in KiB>:<salt>:<box>

<salt> (16 bytes) and <box> (24-byte nonce, then the XSalsa20-Poly1305
ciphertext with its 16-byte tag) are URL-safe base64 without padding.
The SecretBox key is BLAKE2b keyed with the Argon2id output over the token,
so a value copied onto another row does not open there. Every field is
parsed canonically: any changed character changes the key or fails to
parse, and both end in DecryptionError.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

import nacl.exceptions
import nacl.secret
import nacl.utils

from ._errors import DecryptionError
from ._kdf import MEMLIMIT_MAX, OPSLIMIT_MAX, SALT_BYTES, KdfProfile

VERSION = "vs1"
ALGORITHM = "argon2id"
PREFIX = f"{VERSION}:"
NONCE_BYTES = nacl.secret.SecretBox.NONCE_SIZE
_TAG_BYTES = nacl.secret.SecretBox.MACBYTES
_PERSON = b"vaultstore.tok1"

_DECIMAL = re.compile(r"[1-9][0-9]{0,18}")
_B64 = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed stored value; `salt` and `profile` pick the Argon2id key."""

    profile: KdfProfile
    salt: bytes
    box: bytes

    def __repr__(self) -> str:
        return f"Envelope(profile={self.profile!r}, box_bytes={len(self.box)})"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64.fullmatch(text) or len(text) % 4 == 1:
        raise DecryptionError()
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError() from None
    # Unused low bits in the last character must be zero, so that exactly
    # one text encodes each byte string.
    if _b64encode(data) != text:
        raise DecryptionError()
    return data


def _decimal(text: str, high: int) -> int:
    if not _DECIMAL.fullmatch(text):
        raise DecryptionError()
    value = int(text)
    if value > high:
        raise DecryptionError()
    return value


def parse(stored: str) -> Envelope:
    """Parse a stored value; any malformed input raises DecryptionError."""
    if not isinstance(stored, str):
        raise DecryptionError()
    parts = stored.split(":")
    if len(parts) != 6 or parts[0] != VERSION or parts[1] != ALGORITHM:
        raise DecryptionError()
    opslimit = _decimal(parts[2], OPSLIMIT_MAX)
    mem_kib = _decimal(parts[3], MEMLIMIT_MAX // 1024)
    try:
        profile = KdfProfile(opslimit=opslimit, memlimit=mem_kib * 1024)
    except ValueError:
        raise DecryptionError() from None
    salt = _b64decode(parts[4])
    box = _b64decode(parts[5])
    if len(salt) != SALT_BYTES or len(box) < NONCE_BYTES + _TAG_BYTES:
        raise DecryptionError()
    return Envelope(profile=profile, salt=salt, box=box)


def token_key(master: bytes, token: str) -> bytes:
    """Bind the Argon2id output to one token with keyed BLAKE2b."""
    return hashlib.blake2b(
        token.encode("utf-8"), key=master, digest_size=32, person=_PERSON
    ).digest()


def seal(
    master: bytes,
    token: str,
    plaintext: bytes,
    profile: KdfProfile,
    salt: bytes,
    nonce: bytes | None = None,
) -> str:
    """Encrypt `plaintext` for `token` and return the stored text."""
    box = nacl.secret.SecretBox(token_key(master, token))
    if nonce is None:
        nonce = nacl.utils.random(NONCE_BYTES)
    sealed = bytes(box.encrypt(plaintext, nonce))
    return ":".join(
        (
            VERSION,
            ALGORITHM,
            str(profile.opslimit),
            str(profile.memlimit // 1024),
            _b64encode(salt),
            _b64encode(sealed),
        )
    )


def open_box(master: bytes, token: str, envelope: Envelope) -> bytes:
    """Decrypt; a wrong key or altered data raises DecryptionError."""
    box = nacl.secret.SecretBox(token_key(master, token))
    try:
        return bytes(box.decrypt(envelope.box))
    except nacl.exceptions.CryptoError:
        raise DecryptionError() from None

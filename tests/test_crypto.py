"""Key derivation profiles, the stored value format and tamper resistance."""

from __future__ import annotations

import base64
import dataclasses
import re
import string

import databases
import pytest
from _helpers import stored_value, write_value
from conftest import FAST_KDF, OTHER_PASSWORD, PASSWORD
from nacl.pwhash import argon2id

from vaultstore_async import (
    AsyncStore,
    DecryptionError,
    KdfProfile,
    ValidationError,
    _envelope,
)

MIB = 1024 * 1024
STORED_FORMAT = re.compile(
    r"vs1:argon2id:(?P<ops>[1-9][0-9]*):(?P<mem>[1-9][0-9]*)"
    r":(?P<salt>[A-Za-z0-9_-]+):(?P<box>[A-Za-z0-9_-]+)"
)

# The expected text was computed once from libsodium primitives directly
# (Argon2id, keyed BLAKE2b with person "vaultstore.tok1", crypto_secretbox),
# not with the package, so a change to the format or to the key schedule
# makes this test fail.
KNOWN_TOKEN = "tk_known_answer"
KNOWN_PLAINTEXT = b"sk_live_known answer"
KNOWN_SALT = bytes(range(16))
KNOWN_NONCE = bytes(range(100, 124))
KNOWN_MASTER_HEX = "d17ea6341ca93da6079ea2f64dc4aa31dd1aaf9caa67fb42ac4afd0714706f26"
KNOWN_STORED = (
    "vs1:argon2id:1:8:AAECAwQFBgcICQoLDA0ODw"
    ":ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7q6GiWATs1cV0Z7rvTyySHpdyivhHfUGr2FQhXvAFZ4bV8RWr"
)


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_stored(stored: str) -> re.Match[str]:
    match = STORED_FORMAT.fullmatch(stored)
    assert match is not None, "stored value does not match the vs1 format"
    return match


def altered_char(char: str) -> str:
    """Return a different character of the same kind, so the result still
    looks like a plausible stored value."""
    if char.isdigit():
        return str((int(char) + 1) % 10)
    if char in string.ascii_lowercase:
        return string.ascii_lowercase[(string.ascii_lowercase.index(char) + 1) % 26]
    if char in string.ascii_uppercase:
        return string.ascii_uppercase[(string.ascii_uppercase.index(char) + 1) % 26]
    if char == "-":
        return "_"
    if char == "_":
        return "-"
    # The ":" separators become a base64 character.
    return "A"


def sample_positions(stored: str, backend: str) -> list[int]:
    """Return every position on SQLite. On the servers, return the header
    and a spread of salt and box positions to keep the test short."""
    if backend == "sqlite":
        return list(range(len(stored)))
    box_start = stored.rindex(":") + 1
    salt_start = stored.rindex(":", 0, box_start - 1) + 1
    positions = set(range(salt_start + 1))
    positions.update({salt_start + 10, box_start - 2, box_start - 1, box_start})
    box_length = len(stored) - box_start
    for offset in (1, 5, 31, 32, 33, box_length // 2, box_length - 2, box_length - 1):
        positions.add(box_start + offset)
    return sorted(positions)


# Profiles


def test_profile_is_frozen():
    profile = KdfProfile(opslimit=3, memlimit=64 * MIB)

    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.opslimit = 1


def test_profile_fields():
    profile = KdfProfile(opslimit=4, memlimit=128 * MIB)

    assert profile.opslimit == 4
    assert profile.memlimit == 128 * MIB


def test_profile_equality():
    assert KdfProfile(opslimit=2, memlimit=MIB) == KdfProfile(opslimit=2, memlimit=MIB)


def test_profile_minimum_accepted():
    profile = KdfProfile(opslimit=1, memlimit=8 * 1024)

    assert profile.opslimit == 1
    assert profile.memlimit == 8 * 1024


def test_profile_memlimit_whole_kib():
    profile = KdfProfile(opslimit=1, memlimit=8 * 1024 + 100)

    assert profile.memlimit == 8 * 1024


@pytest.mark.parametrize(
    ("opslimit", "memlimit"),
    [
        (0, 8 * 1024),
        (-1, 8 * 1024),
        (1, 8 * 1024 - 1),
        (1, 0),
        (1, -1),
        (2**32, 8 * 1024),
        (1, 4 * 1024**3 + 1024),
        (True, 8 * 1024),
        (1.0, 8 * 1024),
        ("3", 8 * 1024),
        (3, "65536"),
        (None, 8 * 1024),
        (3, None),
    ],
)
def test_profile_rejects_limits(opslimit, memlimit):
    with pytest.raises(ValidationError):
        KdfProfile(opslimit=opslimit, memlimit=memlimit)


def test_preset_default_values():
    profile = KdfProfile.preset("default")

    assert profile.opslimit >= 3
    assert profile.memlimit >= 64 * MIB


@pytest.mark.parametrize("name", ["moderate", "sensitive"])
def test_preset_stronger_than_default(name):
    default = KdfProfile.preset("default")
    profile = KdfProfile.preset(name)

    assert profile.opslimit >= default.opslimit
    assert profile.memlimit >= default.memlimit


def test_preset_fast_for_tests():
    profile = KdfProfile.preset("insecure_fast_for_tests")

    assert profile.opslimit == 1
    assert profile.memlimit == 8 * 1024


@pytest.mark.parametrize("name", ["", "Default", "fast", "insecure", None, 3])
def test_preset_unknown_name(name):
    with pytest.raises(ValidationError):
        KdfProfile.preset(name)


def test_store_default_profile(tmp_path):
    store = AsyncStore(f"sqlite:///{tmp_path / 'vault.db'}")

    assert store.kdf == KdfProfile.preset("default")


def test_store_profile_by_name(tmp_path):
    store = AsyncStore(
        f"sqlite:///{tmp_path / 'vault.db'}", kdf="insecure_fast_for_tests"
    )

    assert store.kdf == FAST_KDF


@pytest.mark.parametrize("kdf", ["nope", 3, (3, 64 * MIB), b"default"])
def test_store_rejects_profile(tmp_path, kdf):
    with pytest.raises(ValidationError):
        AsyncStore(f"sqlite:///{tmp_path / 'vault.db'}", kdf=kdf)


async def test_default_profile_round_trip(tmp_path):
    # The only test that runs a full 64 MiB derivation. The read reuses the
    # cached key, so it derives once.
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    async with AsyncStore(url) as store:
        token = await store.create_token("value", PASSWORD)
        value = await store.read_token(token, PASSWORD)
        derivations = store.stats()["key_derivations"]

    stored = await stored_value(url, "vault", token)
    match = parse_stored(stored)
    assert value == "value"
    assert derivations == 1
    assert int(match["ops"]) >= 3
    assert int(match["mem"]) >= 64 * 1024


# Stored value format


async def test_stored_value_format(store, db_url, table_names):
    token = await store.create_token("secret", PASSWORD)

    stored = await stored_value(db_url, table_names["table_name"], token)
    match = parse_stored(stored)

    assert stored.isascii()
    assert match["ops"] == str(FAST_KDF.opslimit)
    assert match["mem"] == str(FAST_KDF.memlimit // 1024)


async def test_stored_value_sizes(store, db_url, table_names):
    token = await store.create_token("secret", PASSWORD)

    match = parse_stored(await stored_value(db_url, table_names["table_name"], token))

    assert len(b64decode(match["salt"])) == 16
    # 24-byte nonce, then the ciphertext and its 16-byte tag.
    assert len(b64decode(match["box"])) == 24 + len(b"secret") + 16


async def test_stored_value_hides_plaintext(store, db_url, table_names):
    token = await store.create_token("plaintext-marker", PASSWORD)

    stored = await stored_value(db_url, table_names["table_name"], token)

    assert "plaintext-marker" not in stored
    assert PASSWORD not in stored


async def test_fresh_salt_per_write(store, db_url, table_names):
    first = await store.create_token("same", PASSWORD)
    second = await store.create_token("same", PASSWORD)

    table = table_names["table_name"]
    first_match = parse_stored(await stored_value(db_url, table, first))
    second_match = parse_stored(await stored_value(db_url, table, second))

    assert first_match["salt"] != second_match["salt"]
    assert b64decode(first_match["box"])[:24] != b64decode(second_match["box"])[:24]


async def test_fresh_salt_on_update(store, db_url, table_names):
    token = await store.create_token("same", PASSWORD)
    table = table_names["table_name"]
    before = parse_stored(await stored_value(db_url, table, token))

    await store.update_token(token, "same", PASSWORD)

    after = parse_stored(await stored_value(db_url, table, token))
    assert after["salt"] != before["salt"]
    assert after["box"] != before["box"]


def test_known_answer_seal():
    master = argon2id.kdf(
        32,
        PASSWORD.encode("utf-8"),
        KNOWN_SALT,
        opslimit=FAST_KDF.opslimit,
        memlimit=FAST_KDF.memlimit,
    )

    stored = _envelope.seal(
        master, KNOWN_TOKEN, KNOWN_PLAINTEXT, FAST_KDF, KNOWN_SALT, KNOWN_NONCE
    )

    assert master.hex() == KNOWN_MASTER_HEX
    assert stored == KNOWN_STORED


def test_known_answer_open():
    master = bytes.fromhex(KNOWN_MASTER_HEX)
    envelope = _envelope.parse(KNOWN_STORED)

    assert envelope.profile == FAST_KDF
    assert envelope.salt == KNOWN_SALT
    assert _envelope.open_box(master, KNOWN_TOKEN, envelope) == KNOWN_PLAINTEXT


def test_known_answer_other_token():
    master = bytes.fromhex(KNOWN_MASTER_HEX)
    envelope = _envelope.parse(KNOWN_STORED)

    with pytest.raises(DecryptionError):
        _envelope.open_box(master, "tk_other_token", envelope)


async def test_known_answer_through_store(store, db_url, table_names):
    await store.create_custom_token(KNOWN_TOKEN, "placeholder", PASSWORD)
    await write_value(db_url, table_names["table_name"], KNOWN_TOKEN, KNOWN_STORED)

    assert await store.read_token(KNOWN_TOKEN, PASSWORD) == KNOWN_PLAINTEXT.decode()


# Profile changes


async def test_read_under_other_profile(make_store):
    writer = await make_store(kdf=FAST_KDF)
    token = await writer.create_token("value", PASSWORD)
    reader = await make_store(kdf=KdfProfile(opslimit=2, memlimit=16 * 1024))

    assert await reader.read_token(token, PASSWORD) == "value"


async def test_write_records_profile(make_store, db_url, table_names):
    store = await make_store(kdf=KdfProfile(opslimit=2, memlimit=16 * 1024))
    token = await store.create_token("value", PASSWORD)

    match = parse_stored(await stored_value(db_url, table_names["table_name"], token))

    assert match["ops"] == "2"
    assert match["mem"] == "16"


async def test_update_under_new_profile(make_store, db_url, table_names):
    writer = await make_store(kdf=FAST_KDF)
    token = await writer.create_token("old", PASSWORD)
    updater = await make_store(
        kdf=KdfProfile(opslimit=2, memlimit=16 * 1024), automigrate=False
    )

    await updater.update_token(token, "new", PASSWORD)

    match = parse_stored(await stored_value(db_url, table_names["table_name"], token))
    assert match["ops"] == "2"
    assert await writer.read_token(token, PASSWORD) == "new"


# Tamper resistance


async def test_value_bound_to_token(store, db_url, table_names):
    source = await store.create_token("source value", PASSWORD)
    target = await store.create_token("target value", PASSWORD)
    table = table_names["table_name"]

    await write_value(db_url, table, target, await stored_value(db_url, table, source))

    with pytest.raises(DecryptionError):
        await store.read_token(target, PASSWORD)


async def test_copied_value_source_intact(store, db_url, table_names):
    source = await store.create_token("source value", PASSWORD)
    target = await store.create_token("target value", PASSWORD)
    table = table_names["table_name"]

    await write_value(db_url, table, target, await stored_value(db_url, table, source))

    assert await store.read_token(source, PASSWORD) == "source value"


async def test_copied_value_custom_tokens(store, db_url, table_names):
    # Tokens that differ only in case must not share a key either.
    await store.create_custom_token("Token", "upper", PASSWORD)
    await store.create_custom_token("token", "lower", PASSWORD)
    table = table_names["table_name"]

    await write_value(
        db_url, table, "token", await stored_value(db_url, table, "Token")
    )

    with pytest.raises(DecryptionError):
        await store.read_token("token", PASSWORD)


async def test_flip_every_character(store, db_url, table_names, backend):
    token = await store.create_token("tamper target", PASSWORD)
    table = table_names["table_name"]
    original = await stored_value(db_url, table, token)

    outcomes: dict[int, str] = {}
    async with databases.Database(db_url) as db:
        for position in sample_positions(original, backend):
            tampered = (
                original[:position]
                + altered_char(original[position])
                + original[position + 1 :]
            )
            await db.execute(
                f"UPDATE {table} SET vault_value = :value WHERE vault_token = :token",
                {"value": tampered, "token": token},
            )
            try:
                await store.read_token(token, PASSWORD)
            except DecryptionError:
                continue
            except Exception as exc:
                outcomes[position] = type(exc).__name__
            else:
                outcomes[position] = "read succeeded"

    assert outcomes == {}


async def test_flip_restored_value_reads(store, db_url, table_names):
    # The tamper loop is only meaningful if the untouched value still opens.
    token = await store.create_token("tamper target", PASSWORD)
    table = table_names["table_name"]
    original = await stored_value(db_url, table, token)
    tampered = original[:-1] + altered_char(original[-1])

    await write_value(db_url, table, token, tampered)
    await write_value(db_url, table, token, original)

    assert await store.read_token(token, PASSWORD) == "tamper target"


def malformed_values(original: str) -> dict[str, str]:
    prefix, _, box = original.rpartition(":")
    head, _, salt = prefix.rpartition(":")
    salt_bytes = b64decode(salt)
    box_bytes = b64decode(box)

    def encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return {
        "empty": "",
        "truncated": original[:-1],
        "extended": original + "A",
        "padded": original + "==",
        "trailing_space": original + " ",
        "leading_space": " " + original,
        "upper_case_header": original.replace("vs1:argon2id", "VS1:ARGON2ID"),
        "other_version": original.replace("vs1:", "vs2:", 1),
        "other_algorithm": original.replace(":argon2id:", ":argon2i:", 1),
        "extra_field": original + ":AAAA",
        "missing_field": f"{head}:{box}",
        "leading_zero_ops": original.replace(":argon2id:1:", ":argon2id:01:", 1),
        "zero_ops": original.replace(":argon2id:1:", ":argon2id:0:", 1),
        "huge_memlimit": original.replace(":1:8:", ":1:4194305:", 1),
        "short_salt": f"{head}:{encode(salt_bytes[:15])}:{box}",
        "short_box": f"{prefix}:{encode(box_bytes[:39])}",
        "no_ciphertext": f"{prefix}:{encode(box_bytes[:40])}",
        "standard_base64": original.replace("-", "+").replace("_", "/")
        if "-" in original or "_" in original
        else original[:-1] + "+",
        "not_stored_value": "hello",
    }


async def test_malformed_value_rejected(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD)
    table = table_names["table_name"]
    original = await stored_value(db_url, table, token)

    outcomes: dict[str, str] = {}
    for case, malformed in malformed_values(original).items():
        await write_value(db_url, table, token, malformed)
        try:
            await store.read_token(token, PASSWORD)
        except DecryptionError:
            continue
        except Exception as exc:
            outcomes[case] = type(exc).__name__
        else:
            outcomes[case] = "read succeeded"

    assert outcomes == {}


async def test_update_tampered_value(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD)
    table = table_names["table_name"]
    original = await stored_value(db_url, table, token)
    await write_value(db_url, table, token, original[:-1] + altered_char(original[-1]))

    with pytest.raises(DecryptionError):
        await store.update_token(token, "new", PASSWORD)


async def test_invalid_utf8_plaintext(store, db_url, table_names):
    # A value sealed with the right key whose plaintext is not UTF-8 cannot
    # come from this library, so it counts as altered data.
    token = await store.create_token("value", PASSWORD)
    table = table_names["table_name"]
    salt = KNOWN_SALT
    master = argon2id.kdf(
        32,
        PASSWORD.encode("utf-8"),
        salt,
        opslimit=FAST_KDF.opslimit,
        memlimit=FAST_KDF.memlimit,
    )
    forged = _envelope.seal(master, token, b"\xff\xfe\x80", FAST_KDF, salt)
    await write_value(db_url, table, token, forged)

    with pytest.raises(DecryptionError):
        await store.read_token(token, PASSWORD)


async def test_forged_value_right_key(store, db_url, table_names):
    # The same construction with valid UTF-8 does open, so the test above
    # fails for the plaintext and not for the key.
    token = await store.create_token("value", PASSWORD)
    table = table_names["table_name"]
    master = argon2id.kdf(
        32,
        PASSWORD.encode("utf-8"),
        KNOWN_SALT,
        opslimit=FAST_KDF.opslimit,
        memlimit=FAST_KDF.memlimit,
    )
    forged = _envelope.seal(master, token, b"forged", FAST_KDF, KNOWN_SALT)
    await write_value(db_url, table, token, forged)

    assert await store.read_token(token, PASSWORD) == "forged"


async def test_one_error_for_both(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD)
    table = table_names["table_name"]

    with pytest.raises(DecryptionError) as wrong_password:
        await store.read_token(token, OTHER_PASSWORD)

    original = await stored_value(db_url, table, token)
    await write_value(db_url, table, token, original[:-1] + altered_char(original[-1]))
    with pytest.raises(DecryptionError) as altered:
        await store.read_token(token, PASSWORD)

    assert type(wrong_password.value) is type(altered.value)
    assert str(wrong_password.value) == str(altered.value)


async def test_malformed_same_message(store, db_url, table_names):
    token = await store.create_token("value", PASSWORD)
    table = table_names["table_name"]

    with pytest.raises(DecryptionError) as wrong_password:
        await store.read_token(token, OTHER_PASSWORD)

    await write_value(db_url, table, token, "vs1:argon2id:1:8:AAAA:AAAA")
    with pytest.raises(DecryptionError) as malformed:
        await store.read_token(token, PASSWORD)

    assert str(wrong_password.value) == str(malformed.value)


# Passwords as key material


async def test_password_unicode_normalised(store):
    # U+00E9 and "e" followed by U+0301 are one typed password.
    composed = "p\u00e4ssword caf\u00e9 1234"
    decomposed = "pa\u0308ssword cafe\u0301 1234"
    token = await store.create_token("value", decomposed)

    assert await store.read_token(token, composed) == "value"


async def test_password_case_matters(store):
    token = await store.create_token("value", PASSWORD)

    with pytest.raises(DecryptionError):
        await store.read_token(token, PASSWORD.upper())


async def test_password_trailing_space(store):
    token = await store.create_token("value", PASSWORD)

    with pytest.raises(DecryptionError):
        await store.read_token(token, PASSWORD + " ")


async def test_cache_disabled_round_trip(make_store):
    store = await make_store(key_cache_size=0)
    token = await store.create_token("value", PASSWORD)

    assert await store.read_token(token, PASSWORD) == "value"
    assert store.stats()["key_derivations"] == 2

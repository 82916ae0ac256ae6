"""No password, plaintext, derived key or stored value shows up in a repr,
an exception message or the library's log output."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import databases
import pytest
from _helpers import stored_value, write_value
from conftest import FAST_KDF
from nacl.pwhash import argon2id

from vaultstore_async import (
    AsyncStore,
    BackendError,
    KdfProfile,
    PasswordPolicy,
    VaultStoreError,
)

SECRET_PASSWORD = "hunter2-SECRET-password-0xCAFE"
NEW_PASSWORD = "rotated-SECRET-password-0xBEEF"
WRONG_PASSWORD = "guessed-SECRET-password-0xF00D"
SHORT_PASSWORD = "tiny-SECRET"
PLAINTEXT = "sk_live_PLAINTEXT_MARKER_51c3"
NEW_PLAINTEXT = "sk_live_NEW_PLAINTEXT_MARKER_77d1"
URL_PASSWORD = "url-SECRET-Pa55word"
STRICT_POLICY = PasswordPolicy(
    require_lowercase=True,
    require_uppercase=True,
    require_digits=True,
    require_symbols=True,
)


def key_forms(key: bytes) -> list[str]:
    return [
        key.hex(),
        key.hex().upper(),
        base64.b64encode(key).decode().rstrip("="),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
        repr(key)[2:-1],
    ]


def stored_forms(stored: str) -> list[str]:
    """The stored text and its salt and box fields, each a secret alone."""
    _, _, _, _, salt, box = stored.split(":")
    return [stored, salt, box]


def derived_keys(stored: str, password: str, token: str) -> list[bytes]:
    """The Argon2id output and the per-token SecretBox key behind `stored`."""
    _, _, ops, mem_kib, salt, _ = stored.split(":")
    master = argon2id.kdf(
        32,
        password.encode("utf-8"),
        base64.urlsafe_b64decode(salt + "=" * (-len(salt) % 4)),
        opslimit=int(ops),
        memlimit=int(mem_kib) * 1024,
    )
    token_key = hashlib.blake2b(
        token.encode("utf-8"), key=master, digest_size=32, person=b"vaultstore.tok1"
    ).digest()
    return [master, token_key]


class SecretBook:
    """The secrets a scenario used, in every form a leak could take."""

    def __init__(self) -> None:
        self.texts: list[str] = [
            SECRET_PASSWORD,
            NEW_PASSWORD,
            WRONG_PASSWORD,
            SHORT_PASSWORD,
            PLAINTEXT,
            NEW_PLAINTEXT,
            URL_PASSWORD,
        ]

    def add_stored(self, stored: str, password: str, token: str) -> None:
        self.texts.extend(stored_forms(stored))
        for key in derived_keys(stored, password, token):
            self.texts.extend(key_forms(key))

    def found_in(self, text: str) -> list[str]:
        return [secret for secret in self.texts if secret in text]


async def raised(awaitable: Awaitable[object]) -> VaultStoreError:
    """Await `awaitable` and return the library error it raises. Fail the
    test if it raises none."""
    try:
        await awaitable
    except VaultStoreError as exc:
        return exc
    pytest.fail("expected a VaultStoreError")


def exception_text(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), *(repr(arg) for arg in exc.args)])


def url_with_password(url: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "vault_user"
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{URL_PASSWORD}@{host}{port}"))


async def run_scenario(
    store, db_url, table_names, book: SecretBook
) -> list[BaseException]:
    """Drive every operation through success and failure, and return the
    errors raised."""
    table = table_names["table_name"]
    past = datetime.now(UTC) - timedelta(hours=1)
    errors: list[BaseException] = []

    token = await store.create_token(PLAINTEXT, SECRET_PASSWORD)
    book.add_stored(await stored_value(db_url, table, token), SECRET_PASSWORD, token)
    assert await store.read_token(token, SECRET_PASSWORD) == PLAINTEXT

    errors.append(await raised(store.read_token(token, WRONG_PASSWORD)))
    errors.append(
        await raised(store.update_token(token, NEW_PLAINTEXT, WRONG_PASSWORD))
    )
    errors.append(await raised(store.create_token(PLAINTEXT, SHORT_PASSWORD)))
    errors.append(await raised(store.create_token(PLAINTEXT, "")))
    errors.append(
        await raised(
            store.update_token(
                token, NEW_PLAINTEXT, SECRET_PASSWORD, new_password=SHORT_PASSWORD
            )
        )
    )
    errors.append(
        await raised(store.create_token(PLAINTEXT + "\ud800", SECRET_PASSWORD))
    )
    errors.append(
        await raised(store.create_token(PLAINTEXT, SECRET_PASSWORD + "\ud800"))
    )
    errors.append(await raised(store.read_token(token, SECRET_PASSWORD.encode())))
    errors.append(await raised(store.create_token(PLAINTEXT.encode(), SECRET_PASSWORD)))
    errors.append(
        await raised(store.create_token(PLAINTEXT, SECRET_PASSWORD, length=PLAINTEXT))
    )

    await store.update_token(
        token, NEW_PLAINTEXT, SECRET_PASSWORD, new_password=NEW_PASSWORD
    )
    book.add_stored(await stored_value(db_url, table, token), NEW_PASSWORD, token)
    errors.append(await raised(store.read_token(token, SECRET_PASSWORD)))

    await store.create_custom_token(
        PLAINTEXT, PLAINTEXT, SECRET_PASSWORD, expires_at=past
    )
    book.add_stored(
        await stored_value(db_url, table, PLAINTEXT), SECRET_PASSWORD, PLAINTEXT
    )
    errors.append(await raised(store.read_token(PLAINTEXT, SECRET_PASSWORD)))
    errors.append(await raised(store.read_token(PLAINTEXT, WRONG_PASSWORD)))
    errors.append(
        await raised(store.create_custom_token(PLAINTEXT, PLAINTEXT, SECRET_PASSWORD))
    )

    stored = await stored_value(db_url, table, token)
    await write_value(
        db_url, table, token, stored[:-1] + ("A" if stored[-1] != "A" else "B")
    )
    errors.append(await raised(store.read_token(token, NEW_PASSWORD)))

    await store.soft_delete_token(token)
    errors.append(await raised(store.read_token(token, NEW_PASSWORD)))
    errors.append(await raised(store.soft_delete_token(token)))
    await store.delete_token(token)
    errors.append(await raised(store.restore_token(token)))
    return errors


# Reprs


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://vault_user:{URL_PASSWORD}@127.0.0.1:5432/test",
        f"mysql://vault_user:{URL_PASSWORD}@127.0.0.1:3306/test",
        f"postgresql+asyncpg://vault_user:{URL_PASSWORD}@127.0.0.1/test",
    ],
)
def test_store_repr_hides_url_password(url):
    store = AsyncStore(url, kdf=FAST_KDF)

    assert URL_PASSWORD not in repr(store)
    assert URL_PASSWORD not in str(store)


def test_profile_repr_plain():
    profile = KdfProfile(opslimit=3, memlimit=64 * 1024 * 1024)

    assert repr(profile) == "KdfProfile(opslimit=3, memlimit=67108864)"


def test_policy_repr_plain():
    policy = PasswordPolicy(min_length=20, require_digits=True)

    assert "min_length=20" in repr(policy)
    assert "require_digits=True" in repr(policy)


async def test_store_repr_after_use(store, db_url, table_names):
    book = SecretBook()
    await run_scenario(store, db_url, table_names, book)

    texts = [
        repr(store),
        str(store),
        repr(store.stats()),
        repr(store.kdf),
        repr(store.password_policy),
    ]
    await store.close()
    texts.append(repr(store))

    assert [book.found_in(text) for text in texts] == [[] for _ in texts]


# Exceptions


async def test_error_messages_hide_secrets(store, db_url, table_names):
    book = SecretBook()
    errors = await run_scenario(store, db_url, table_names, book)

    leaks = {
        f"{index}:{type(exc).__name__}": book.found_in(exception_text(exc))
        for index, exc in enumerate(errors)
    }

    assert {case: found for case, found in leaks.items() if found} == {}


async def test_scenario_raises_every_kind(store, db_url, table_names):
    errors = await run_scenario(store, db_url, table_names, SecretBook())

    kinds = {type(exc).__name__ for exc in errors}

    assert kinds == {
        "DecryptionError",
        "PasswordPolicyError",
        "ValidationError",
        "TokenExpiredError",
        "TokenExistsError",
        "TokenNotFoundError",
    }


async def test_policy_errors_hide_password(make_store):
    store = await make_store(password_policy=STRICT_POLICY)
    passwords = [
        "ALL-UPPER-SECRET-PASSWORD-1",
        "all-lower-secret-password-1",
        "No-Digits-Secret-Password",
        "NoSymbolsSecretPassword1",
        "Sh0rt-SECRET",
    ]

    messages = {}
    for password in passwords:
        exc = await raised(store.create_token(PLAINTEXT, password))
        messages[password] = exception_text(exc)

    assert {p: m for p, m in messages.items() if p in m} == {}


async def install_failing_trigger(
    db_url: str, table: str, db: databases.Database
) -> None:
    """Make every INSERT into `table` fail with a driver error that quotes the
    new row's stored value where the backend can (PostgreSQL, MariaDB)."""
    if db_url.startswith("postgresql"):
        await db.execute(
            f"CREATE FUNCTION {table}_reject() RETURNS trigger AS $$"
            " BEGIN RAISE EXCEPTION 'rejected %', NEW.vault_value; END $$"
            " LANGUAGE plpgsql"
        )
        await db.execute(
            f"CREATE TRIGGER {table}_reject BEFORE INSERT ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {table}_reject()"
        )
    elif db_url.startswith("mysql"):
        await db.execute(
            f"CREATE TRIGGER {table}_reject BEFORE INSERT ON {table} FOR EACH ROW"
            " BEGIN"
            " DECLARE message VARCHAR(128);"
            " SET message = LEFT(NEW.vault_value, 120);"
            " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = message;"
            " END"
        )
    else:
        await db.execute(
            f"CREATE TRIGGER {table}_reject BEFORE INSERT ON {table}"
            " BEGIN SELECT RAISE(ABORT, 'rejected'); END"
        )


async def test_driver_message_not_copied(store, db_url, table_names, backend):
    table = table_names["table_name"]
    async with databases.Database(db_url) as db:
        await install_failing_trigger(db_url, table, db)
    try:
        exc = await raised(store.create_token(PLAINTEXT, SECRET_PASSWORD))
    finally:
        if backend == "postgresql":
            async with databases.Database(db_url) as db:
                await db.execute(f"DROP TRIGGER {table}_reject ON {table}")
                await db.execute(f"DROP FUNCTION {table}_reject()")

    assert isinstance(exc, BackendError)
    assert exc.__cause__ is not None
    assert "vs1:" not in exception_text(exc)
    assert PLAINTEXT not in exception_text(exc)
    if backend != "sqlite":
        # The driver did quote the stored value, so the check above means something.
        assert "vs1:argon2id" in str(exc.__cause__)


# Logs


async def test_debug_logs_hide_secrets(make_store, db_url, table_names, caplog):
    caplog.set_level(logging.DEBUG, logger="vaultstore_async")
    book = SecretBook()

    store = await make_store()
    await run_scenario(store, db_url, table_names, book)
    await store.close()

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = [r for r in caplog.records if r.name.split(".")[0] == "vaultstore_async"]
    leaks = {formatter.format(r): book.found_in(formatter.format(r)) for r in records}

    assert records != []
    assert {line: found for line, found in leaks.items() if found} == {}


async def test_connect_log_hides_url_password(db_url, table_names, backend, caplog):
    if backend != "postgresql":
        pytest.skip("only the PostgreSQL test server accepts any password")
    caplog.set_level(logging.DEBUG, logger="vaultstore_async")
    store = AsyncStore(url_with_password(db_url), kdf=FAST_KDF, **table_names)
    try:
        async with store:
            messages = [r.getMessage() for r in caplog.records]
            store_repr = repr(store)
    finally:
        async with databases.Database(db_url) as db:
            for name in (
                *table_names.values(),
                f"{table_names['table_name']}_migrations",
            ):
                await db.execute(f"DROP TABLE IF EXISTS {name}")

    assert any("connected" in message for message in messages)
    assert [m for m in messages if URL_PASSWORD in m] == []
    assert URL_PASSWORD not in store_repr

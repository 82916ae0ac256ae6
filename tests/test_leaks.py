"""Secrets never leak: not through repr or str of public objects, exception
messages and the exceptions we chain, the library's own log lines at
DEBUG, nor by telling a caller without the password that a token expired.

The secrets are the passwords, the plaintexts, the stored values (the
ciphertext text) and the keys derived for each row. The `databases` and
`aiosqlite` loggers print bound values at DEBUG by design (see
SECURITY.md), so only the `vaultstore_async` logger is checked.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
import traceback
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import databases
import pymysql
import pytest
from conftest import FAST_KDF, drop_tables
from nacl.pwhash import argon2id

from vaultstore_async import (
    MAX_VALUE_BYTES,
    AsyncStore,
    BackendError,
    DecryptionError,
    PasswordPolicy,
    Record,
    RecordQuery,
    TokenExpiredError,
    VaultStoreError,
    _envelope,
)
from vaultstore_async._migrations import Names

SECRET_PASSWORD = "Pw-secret-7f3a9c1e-long-enough"
NEW_PASSWORD = "Pw-secret-new-2b8d44-long-enough"
WRONG_PASSWORD = "Pw-secret-wrong-9e01c7-long"
SHORT_PASSWORD = "Pw-short-5c1"
PLAINTEXT = "Plain-secret-51d2e8a0"
URL_PASSWORD = "Url-secret-4711"
ALL_ROWS = RecordQuery(include_soft_deleted=True)
LOGGER = "vaultstore_async"


def expired_time() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


class Collector:
    """Gathers every text the library showed the caller."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.raised: list[type[BaseException]] = []

    def add(self, source: str, text: str) -> None:
        self.texts.append((source, text))

    def show(self, source: str, item: object) -> None:
        self.add(f"repr({source})", repr(item))
        self.add(f"str({source})", str(item))

    def exception(self, source: str, exc: BaseException) -> None:
        """Record the exception and every exception we chained to it; the
        driver error under a BackendError is the driver's own text."""
        self.raised.append(type(exc))
        current: BaseException | None = exc
        depth = 0
        while current is not None and depth < 10:
            self.show(f"{source} chain {depth}", current)
            self.add(f"{source} args {depth}", repr(current.args))
            if isinstance(current, BackendError):
                break
            depth += 1
            if current.__cause__ is not None:
                current = current.__cause__
            elif not current.__suppress_context__:
                current = current.__context__
            else:
                current = None
        if not isinstance(exc, BackendError):
            formatted = "".join(traceback.format_exception_only(type(exc), exc))
            self.add(f"{source} formatted", formatted)

    async def attempt(self, source: str, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except VaultStoreError as exc:
            self.exception(source, exc)
            return None


def key_forms(key: bytes) -> list[str]:
    return [
        key.hex(),
        base64.b64encode(key).decode().rstrip("="),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
        repr(key)[2:-1],
    ]


def derived_keys(stored: str, token: str, password: str) -> list[bytes]:
    envelope = _envelope.parse(stored)
    master = argon2id.kdf(
        32,
        unicodedata.normalize("NFC", password).encode("utf-8"),
        envelope.salt,
        opslimit=envelope.profile.opslimit,
        memlimit=envelope.profile.memlimit,
    )
    return [master, _envelope.token_key(master, token)]


async def secrets_of(store: AsyncStore) -> dict[str, str]:
    """Name -> secret text: passwords, plaintext, stored values and keys."""
    found = {
        "password": SECRET_PASSWORD,
        "new password": NEW_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "short password": SHORT_PASSWORD,
        "plaintext": PLAINTEXT,
        "url password": URL_PASSWORD,
    }
    for record in await store.list_records(ALL_ROWS):
        found[f"stored value of {record.token}"] = record.value
        found[f"ciphertext of {record.token}"] = record.value.rsplit(":", 1)[1][:40]
        for password in (SECRET_PASSWORD, NEW_PASSWORD):
            try:
                keys = derived_keys(record.value, record.token, password)
            except DecryptionError:
                continue
            for index, key in enumerate(keys):
                for form_index, form in enumerate(key_forms(key)):
                    found[f"key {index}.{form_index} of {record.token}"] = form
    return found


def leaks(texts: list[tuple[str, str]], secrets: dict[str, str]) -> list[str]:
    return [
        f"{name} in {source}"
        for source, text in texts
        for name, secret in secrets.items()
        if secret in text
    ]


Call = Callable[[], Awaitable[Any]]


def failing_calls(store: AsyncStore, live: str, expired: str) -> list[tuple[str, Call]]:
    """Calls that raise, each given a secret that its error must not repeat."""
    oversize = PLAINTEXT * (MAX_VALUE_BYTES // len(PLAINTEXT) + 1)
    bad_record = Record(id="r", token="t", value=PLAINTEXT + "é")
    return [
        ("wrong password", lambda: store.read_token(live, WRONG_PASSWORD)),
        ("expired", lambda: store.read_token(expired, SECRET_PASSWORD)),
        ("expired wrong", lambda: store.read_token(expired, WRONG_PASSWORD)),
        ("batch wrong", lambda: store.read_tokens([live, expired], WRONG_PASSWORD)),
        ("missing", lambda: store.read_token("absent", SECRET_PASSWORD)),
        ("batch missing", lambda: store.read_tokens([live, "x"], SECRET_PASSWORD)),
        (
            "duplicate",
            lambda: store.create_custom_token("custom", PLAINTEXT, SECRET_PASSWORD),
        ),
        ("update wrong", lambda: store.update_token(live, "x", WRONG_PASSWORD)),
        ("short", lambda: store.create_token(PLAINTEXT, SHORT_PASSWORD)),
        (
            "short new",
            lambda: store.update_token(
                live, PLAINTEXT, SECRET_PASSWORD, new_password=SHORT_PASSWORD
            ),
        ),
        (
            "short change",
            lambda: store.change_password(SECRET_PASSWORD, SHORT_PASSWORD),
        ),
        ("password bytes", lambda: store.create_token("x", SECRET_PASSWORD.encode())),
        (
            "value bytes",
            lambda: store.create_token(PLAINTEXT.encode(), SECRET_PASSWORD),
        ),
        ("oversize", lambda: store.create_token(oversize, SECRET_PASSWORD)),
        ("surrogate value", lambda: store.create_token(PLAINTEXT + "\ud800", "x" * 16)),
        (
            "surrogate password",
            lambda: store.create_token(PLAINTEXT, SECRET_PASSWORD + "\ud800"),
        ),
        ("nul setting", lambda: store.set_setting("key", PLAINTEXT + "\x00")),
        ("record value", lambda: store.create_record(bad_record)),
    ]


def policy_failures(collector: Collector) -> None:
    strict = PasswordPolicy(require_symbols=True, require_digits=True)
    for source, password in (
        ("policy", "NoSymbolsOrDigitsHere"),
        ("policy short", SHORT_PASSWORD),
    ):
        try:
            strict.check(password)
        except VaultStoreError as exc:
            collector.exception(source, exc)


async def exercise(store: AsyncStore, collector: Collector) -> None:
    """Run every operation that takes a secret, with good and bad input,
    and show every public object the run produced."""
    live = await store.create_token(PLAINTEXT, SECRET_PASSWORD)
    expired = await store.create_token(
        PLAINTEXT, SECRET_PASSWORD, expires_at=expired_time()
    )
    await store.create_custom_token("custom", PLAINTEXT, SECRET_PASSWORD)
    await store.upsert_token("custom", PLAINTEXT + "!", SECRET_PASSWORD)
    await store.read_token(live, SECRET_PASSWORD)
    await store.read_tokens([live, "custom"], SECRET_PASSWORD)
    await store.update_token(live, PLAINTEXT, SECRET_PASSWORD)

    for source, call in failing_calls(store, live, expired):
        await collector.attempt(source, call)
    policy_failures(collector)

    await store.change_password(SECRET_PASSWORD, NEW_PASSWORD)
    await store.change_password(NEW_PASSWORD, SECRET_PASSWORD)
    await store.soft_delete_token(live)
    await store.restore_token(live)

    for record in await store.list_records(ALL_ROWS):
        collector.show("record", record)
    collector.show("query", RecordQuery(token=live, limit=5))
    collector.show("profile", store.kdf)
    collector.show("policy", store.password_policy)
    collector.show("store", store)
    collector.add("stats", repr(store.stats()))


def log_texts(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    return [
        (f"log {record.name}", formatter.format(record))
        for record in caplog.records
        if record.name == LOGGER or record.name.startswith(LOGGER + ".")
    ]


async def test_exceptions_hide_secrets(store: AsyncStore) -> None:
    collector = Collector()

    await exercise(store, collector)

    assert leaks(collector.texts, await secrets_of(store)) == []
    kinds = {kind.__name__ for kind in collector.raised}
    assert kinds >= {
        "DecryptionError",
        "TokenExpiredError",
        "TokenNotFoundError",
        "TokenExistsError",
        "PasswordPolicyError",
        "ValidationError",
    }


async def test_debug_logs_hide_secrets(
    make_store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    store = await make_store()
    collector = Collector()

    await exercise(store, collector)
    secrets = await secrets_of(store)
    await store.close()

    lines = log_texts(caplog)
    assert lines, "the library logged nothing, so this test checks nothing"
    assert leaks(lines, secrets) == []


async def test_closed_store_error_hides_secrets(store: AsyncStore) -> None:
    token = await store.create_token(PLAINTEXT, SECRET_PASSWORD)
    secrets = await secrets_of(store)
    await store.close()
    collector = Collector()

    await collector.attempt("closed", lambda: store.read_token(token, SECRET_PASSWORD))

    assert [kind.__name__ for kind in collector.raised] == ["StoreClosedError"]
    assert leaks(collector.texts, secrets) == []


async def test_migration_error_hides_secrets(
    make_store, db_url: str, table_names: dict[str, str]
) -> None:
    store = await make_store()
    await store.create_token(PLAINTEXT, SECRET_PASSWORD)
    names = Names(vault=table_names["table_name"], meta=table_names["meta_table_name"])
    migrations = names.migrations
    async with databases.Database(db_url) as db:
        await db.execute(
            f"INSERT INTO {migrations} (version, applied_at)"
            " VALUES (99, CURRENT_TIMESTAMP)"
        )
    collector = Collector()

    await collector.attempt("migration", lambda: make_store())

    assert [kind.__name__ for kind in collector.raised] == ["MigrationError"]
    assert leaks(collector.texts, await secrets_of(store)) == []


# A driver error that echoes the stored value


async def add_echo_trigger(backend: str, url: str, table: str) -> None:
    """Make every INSERT into `table` fail with a driver error whose message
    repeats the stored value (SQLite can only raise a fixed message)."""
    if backend == "postgresql":
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(
                f"CREATE FUNCTION {table}_echo() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RAISE EXCEPTION 'echo-marker %', NEW.vault_value;"
                " END $$"
            )
            await connection.execute(
                f"CREATE TRIGGER {table}_echo BEFORE INSERT ON {table}"
                f" FOR EACH ROW EXECUTE FUNCTION {table}_echo()"
            )
        finally:
            await connection.close()
    elif backend == "mysql":
        parts = databases.DatabaseURL(url)
        connection = pymysql.connect(
            host=parts.hostname,
            port=parts.port or 3306,
            user=parts.username,
            password=parts.password or "",
            database=parts.database,
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE TRIGGER {table}_echo BEFORE INSERT ON {table}"
                    " FOR EACH ROW BEGIN DECLARE message VARCHAR(128);"
                    " SET message = LEFT(CONCAT('echo-marker ', NEW.vault_value), 128);"
                    " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = message; END"
                )
        finally:
            connection.close()
    else:
        path = url.removeprefix("sqlite:///")
        connection = sqlite3.connect(path)
        try:
            connection.execute(
                f"CREATE TRIGGER {table}_echo BEFORE INSERT ON {table}"
                " BEGIN SELECT RAISE(ABORT, 'echo-marker'); END"
            )
            connection.commit()
        finally:
            connection.close()


async def drop_echo_function(backend: str, url: str, table: str) -> None:
    if backend == "postgresql":
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(f"DROP FUNCTION IF EXISTS {table}_echo CASCADE")
        finally:
            await connection.close()


async def test_driver_echo_not_passed(
    store: AsyncStore, backend: str, db_url: str, table_names: dict[str, str]
) -> None:
    table = table_names["table_name"]
    await add_echo_trigger(backend, db_url, table)
    try:
        with pytest.raises(BackendError) as caught:
            await store.create_token(PLAINTEXT, SECRET_PASSWORD)
    finally:
        await drop_echo_function(backend, db_url, table)

    driver_text = str(caught.value.__cause__)
    assert "echo-marker" in driver_text
    if backend != "sqlite":
        assert "vs1:argon2id:" in driver_text
    assert "echo-marker" not in str(caught.value)
    assert "vs1:argon2id:" not in str(caught.value)
    assert "echo-marker" not in repr(caught.value.args)


# Objects built with secrets in reach


def test_store_repr_hides_url_password() -> None:
    urls = [
        f"postgresql://user:{URL_PASSWORD}@127.0.0.1:5432/db",
        f"mysql://user:{URL_PASSWORD}@127.0.0.1:3306/db",
        f"mariadb://user:{URL_PASSWORD}@127.0.0.1/db?min_size=2",
    ]
    displayed = []
    for url in urls:
        store = AsyncStore(url, kdf=FAST_KDF)
        displayed.extend([repr(store), str(store)])

    assert [text for text in displayed if URL_PASSWORD in text] == []


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_connect_log_hides_url_password(
    db_url: str, table_names: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL here trusts local connections, so a URL with a password
    still connects and the connect and close log lines can be checked."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    scheme, rest = db_url.split("://", 1)
    user, host = rest.split("@", 1)
    url = f"{scheme}://{user}:{URL_PASSWORD}@{host}"
    store = AsyncStore(url, kdf=FAST_KDF, **table_names)
    try:
        await store.connect()
        displayed = [repr(store), str(store)]
    finally:
        await store.close()
        await drop_tables(db_url, table_names)

    lines = log_texts(caplog)
    assert any("connected" in text for _, text in lines)
    assert [text for _, text in lines if URL_PASSWORD in text] == []
    assert [text for text in displayed if URL_PASSWORD in text] == []


def test_records_repr_hides_value() -> None:
    record = Record(id="id-1", token="tk_x", value="vs1:argon2id:" + PLAINTEXT)

    displayed = [repr(record), str(record)]

    assert [text for text in displayed if PLAINTEXT in text] == []


# Expiry is not revealed without the password


async def failure(call: Callable[[], Awaitable[Any]]) -> tuple[Any, ...]:
    """Return what a caller sees of the exception `call` raises."""
    try:
        await call()
    except VaultStoreError as exc:
        return (
            type(exc).__name__,
            str(exc),
            exc.args,
            exc.__cause__ is None,
            exc.__suppress_context__,
        )
    return ("no exception",)


async def test_expired_wrong_password_read(store: AsyncStore) -> None:
    live = await store.create_token(PLAINTEXT, SECRET_PASSWORD)
    expired = await store.create_token(
        PLAINTEXT, SECRET_PASSWORD, expires_at=expired_time()
    )

    on_live = await failure(lambda: store.read_token(live, WRONG_PASSWORD))
    on_expired = await failure(lambda: store.read_token(expired, WRONG_PASSWORD))

    assert on_live[0] == "DecryptionError"
    assert on_expired == on_live


async def test_expired_wrong_password_batch(store: AsyncStore) -> None:
    live = await store.create_token(PLAINTEXT, SECRET_PASSWORD)
    expired = await store.create_token(
        PLAINTEXT, SECRET_PASSWORD, expires_at=expired_time()
    )

    on_live = await failure(lambda: store.read_tokens([live], WRONG_PASSWORD))
    on_expired = await failure(lambda: store.read_tokens([expired], WRONG_PASSWORD))
    resolved = await failure(
        lambda: store.resolve_tokens({"key": expired}, WRONG_PASSWORD)
    )

    assert on_live[0] == "DecryptionError"
    assert on_expired == on_live
    assert resolved == on_live


async def test_expired_wrong_password_update(store: AsyncStore) -> None:
    live = await store.create_token(PLAINTEXT, SECRET_PASSWORD)
    expired = await store.create_token(
        PLAINTEXT, SECRET_PASSWORD, expires_at=expired_time()
    )

    on_live = await failure(lambda: store.update_token(live, "x", WRONG_PASSWORD))
    on_expired = await failure(lambda: store.update_token(expired, "x", WRONG_PASSWORD))

    assert on_live[0] == "DecryptionError"
    assert on_expired == on_live


async def test_expired_right_password_raises(store: AsyncStore) -> None:
    expired = await store.create_token(
        PLAINTEXT, SECRET_PASSWORD, expires_at=expired_time()
    )

    with pytest.raises(TokenExpiredError):
        await store.read_token(expired, SECRET_PASSWORD)

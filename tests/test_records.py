"""Record access on every backend: find, import, update and delete rows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from _feature_helpers import AWKWARD_KEYS, hours_from_now
from conftest import PASSWORD

from vaultstore_async import (
    Record,
    RecordQuery,
    TokenExistsError,
    TokenNotFoundError,
    ValidationError,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
PLUS_FIVE = timezone(timedelta(hours=5))


def make_record(index: int = 1, **changes) -> Record:
    fields = {
        "id": f"record-{index}",
        "token": f"token-{index}",
        "value": f"stored text {index}",
        "created_at": T0 + timedelta(minutes=index),
        "updated_at": T0 + timedelta(minutes=index, seconds=30),
        "expires_at": None,
        "soft_deleted_at": None,
    }
    fields.update(changes)
    return Record(**fields)


# Record


def test_record_is_frozen():
    record = make_record()

    with pytest.raises(dataclasses.FrozenInstanceError):
        record.value = "changed"


def test_record_repr_hides_value():
    record = make_record(value="vs1:argon2id:do-not-print")

    text = repr(record)

    assert "do-not-print" not in text
    assert "value" not in text
    assert "record-1" in text


async def test_record_from_created_token(store):
    token = await store.create_token("plaintext secret", PASSWORD)

    record = await store.find_record_by_token(token)

    assert record is not None
    assert isinstance(record.id, str)
    assert record.id != ""
    assert record.token == token
    assert record.value.startswith("vs1:")
    assert "plaintext secret" not in record.value
    assert record.expires_at is None
    assert record.soft_deleted_at is None


async def test_record_times_aware_utc(store):
    token = await store.create_token("value", PASSWORD, expires_at=hours_from_now(1))
    await store.soft_delete_token(token)

    record = await store.find_record_by_token(token, include_soft_deleted=True)

    assert record is not None
    for name in ("created_at", "updated_at", "expires_at", "soft_deleted_at"):
        moment = getattr(record, name)
        assert isinstance(moment, datetime), name
        assert moment.utcoffset() == timedelta(0), name
    assert abs(record.created_at - datetime.now(UTC)) < timedelta(minutes=1)


# find_record_by_id / find_record_by_token


async def test_find_record_by_id(store):
    await store.create_record(make_record(1))
    await store.create_record(make_record(2))

    assert await store.find_record_by_id("record-2") == make_record(2)


async def test_find_record_by_id_missing(store):
    await store.create_record(make_record(1))

    assert await store.find_record_by_id("record-9") is None


async def test_find_record_by_id_soft_deleted(store):
    hidden = make_record(1, soft_deleted_at=T0 + timedelta(days=1))
    await store.create_record(hidden)

    assert await store.find_record_by_id("record-1") is None
    assert await store.find_record_by_id("record-1", include_soft_deleted=False) is None
    assert (
        await store.find_record_by_id("record-1", include_soft_deleted=True) == hidden
    )


async def test_find_record_by_token(store):
    await store.create_record(make_record(1))
    await store.create_record(make_record(2))

    assert await store.find_record_by_token("token-1") == make_record(1)


async def test_find_record_by_token_missing(store):
    await store.create_record(make_record(1))

    assert await store.find_record_by_token("token-9") is None


async def test_find_record_by_token_soft_deleted(store):
    hidden = make_record(1, soft_deleted_at=T0 + timedelta(days=1))
    await store.create_record(hidden)

    assert await store.find_record_by_token("token-1") is None
    assert (
        await store.find_record_by_token("token-1", include_soft_deleted=False) is None
    )
    assert (
        await store.find_record_by_token("token-1", include_soft_deleted=True) == hidden
    )


async def test_find_record_awkward_tokens(store):
    for index, token in enumerate(AWKWARD_KEYS):
        await store.create_record(make_record(index, token=token))

    for index, token in enumerate(AWKWARD_KEYS):
        found = await store.find_record_by_token(token)
        assert found is not None, token
        assert found.id == f"record-{index}", token


async def test_find_record_awkward_ids(store):
    for index, record_id in enumerate(AWKWARD_KEYS):
        await store.create_record(make_record(index, id=record_id))

    for index, record_id in enumerate(AWKWARD_KEYS):
        found = await store.find_record_by_id(record_id)
        assert found is not None, record_id
        assert found.token == f"token-{index}", record_id


@pytest.mark.parametrize(
    ("method", "argument", "options"),
    [
        ("find_record_by_id", "", {}),
        ("find_record_by_id", 12, {}),
        ("find_record_by_id", "x" * 256, {}),
        ("find_record_by_id", "a\x00b", {}),
        ("find_record_by_id", "record-1", {"include_soft_deleted": "yes"}),
        ("find_record_by_id", "record-1", {"include_soft_deleted": 1}),
        ("find_record_by_token", "", {}),
        ("find_record_by_token", None, {}),
        ("find_record_by_token", "x" * 256, {}),
        ("find_record_by_token", "token-1", {"include_soft_deleted": None}),
    ],
    ids=[
        "id-empty",
        "id-int",
        "id-long",
        "id-nul",
        "id-flag-str",
        "id-flag-int",
        "token-empty",
        "token-none",
        "token-long",
        "token-flag-none",
    ],
)
async def test_find_record_invalid_arguments(store, method, argument, options):
    with pytest.raises(ValidationError):
        await getattr(store, method)(argument, **options)


# create_record


async def test_create_record_round_trip(store):
    record = make_record(
        1,
        expires_at=T0 + timedelta(days=30),
        soft_deleted_at=T0 + timedelta(days=2),
    )

    await store.create_record(record)

    assert (
        await store.find_record_by_id("record-1", include_soft_deleted=True) == record
    )


async def test_create_record_converts_to_utc(store):
    local = datetime(2024, 3, 1, 17, 0, tzinfo=PLUS_FIVE)

    await store.create_record(make_record(1, created_at=local, expires_at=local))

    found = await store.find_record_by_id("record-1")
    assert found is not None
    assert found.created_at == T0
    assert found.created_at.utcoffset() == timedelta(0)
    assert found.expires_at == T0


async def test_create_record_microseconds(store):
    moment = T0.replace(microsecond=123456)

    await store.create_record(make_record(1, created_at=moment, updated_at=moment))

    found = await store.find_record_by_id("record-1")
    assert found is not None
    assert found.created_at == moment
    assert found.updated_at == moment


async def test_create_record_default_times(store):
    before = datetime.now(UTC) - timedelta(seconds=1)

    await store.create_record(make_record(1, created_at=None, updated_at=None))

    found = await store.find_record_by_id("record-1")
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert found is not None
    assert before <= found.created_at <= after
    assert before <= found.updated_at <= after


async def test_create_record_imports_token(make_store):
    source = await make_store()
    token = await source.create_token("exported secret", PASSWORD)
    exported = await source.find_record_by_token(token)
    assert exported is not None
    assert await source.delete_record_by_token(token)

    await source.create_record(exported)

    assert await source.read_token(token, PASSWORD) == "exported secret"


async def test_create_record_duplicate_token(store):
    await store.create_record(make_record(1))

    with pytest.raises(TokenExistsError):
        await store.create_record(make_record(2, token="token-1"))

    assert await store.count_records(RecordQuery(include_soft_deleted=True)) == 1


async def test_create_record_token_soft_deleted(store):
    await store.create_record(make_record(1, soft_deleted_at=T0))

    with pytest.raises(TokenExistsError):
        await store.create_record(make_record(2, token="token-1"))


async def test_create_record_duplicate_id(store):
    await store.create_record(make_record(1))

    with pytest.raises(ValidationError):
        await store.create_record(make_record(1, token="token-other"))

    assert await store.find_record_by_id("record-1") == make_record(1)
    assert await store.find_record_by_token("token-other") is None


@pytest.mark.parametrize(
    "record",
    [
        make_record(id=""),
        make_record(id="x" * 256),
        make_record(token=""),
        make_record(token="x" * 256),
        make_record(value="non-ascii é"),
        make_record(value="nul \x00 inside"),
        make_record(value=b"bytes"),
        make_record(created_at=datetime(2024, 1, 1)),
        make_record(expires_at="2030-01-01"),
        make_record(soft_deleted_at=datetime(2024, 1, 1)),
    ],
    ids=[
        "empty-id",
        "long-id",
        "empty-token",
        "long-token",
        "non-ascii-value",
        "nul-value",
        "bytes-value",
        "naive-created",
        "str-expiry",
        "naive-deleted",
    ],
)
async def test_create_record_invalid(store, record):
    with pytest.raises(ValidationError):
        await store.create_record(record)

    assert await store.count_records(RecordQuery(include_soft_deleted=True)) == 0


@pytest.mark.parametrize("record", [None, {"id": "record-1"}, "record-1"])
async def test_create_record_not_a_record(store, record):
    with pytest.raises(ValidationError):
        await store.create_record(record)


# update_record


async def test_update_record_writes_fields(store):
    await store.create_record(make_record(1))
    changed = make_record(
        1,
        token="token-renamed",
        value="new stored text",
        expires_at=T0 + timedelta(days=9),
        soft_deleted_at=T0 + timedelta(days=8),
    )

    await store.update_record(changed)

    found = await store.find_record_by_id("record-1", include_soft_deleted=True)
    assert found is not None
    assert found.token == "token-renamed"
    assert found.value == "new stored text"
    assert found.expires_at == T0 + timedelta(days=9)
    assert found.soft_deleted_at == T0 + timedelta(days=8)


async def test_update_record_times(store):
    original = make_record(1)
    await store.create_record(original)
    before = datetime.now(UTC) - timedelta(seconds=1)

    await store.update_record(
        make_record(1, created_at=T0 + timedelta(days=100), updated_at=T0)
    )

    found = await store.find_record_by_id("record-1")
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert found is not None
    assert found.created_at == original.created_at
    assert before <= found.updated_at <= after


async def test_update_record_restores(store):
    await store.create_record(make_record(1, soft_deleted_at=T0))

    await store.update_record(make_record(1, soft_deleted_at=None))

    found = await store.find_record_by_id("record-1")
    assert found is not None
    assert found.soft_deleted_at is None


async def test_update_record_old_token_gone(store):
    await store.create_record(make_record(1))

    await store.update_record(make_record(1, token="token-renamed"))

    assert await store.find_record_by_token("token-1") is None
    assert await store.count_records(RecordQuery(include_soft_deleted=True)) == 1


async def test_update_record_missing_id(store):
    await store.create_record(make_record(1))

    with pytest.raises(TokenNotFoundError):
        await store.update_record(make_record(2))

    assert await store.count_records(RecordQuery(include_soft_deleted=True)) == 1


async def test_update_record_token_taken(store):
    await store.create_record(make_record(1))
    await store.create_record(make_record(2))

    with pytest.raises(TokenExistsError):
        await store.update_record(make_record(2, token="token-1"))

    assert await store.find_record_by_id("record-2") == make_record(2)


async def test_update_record_leaves_others(store):
    await store.create_record(make_record(1))
    await store.create_record(make_record(2))

    await store.update_record(make_record(1, value="changed"))

    assert await store.find_record_by_id("record-2") == make_record(2)


@pytest.mark.parametrize(
    "record",
    [None, make_record(id=""), make_record(token=""), make_record(value=12)],
    ids=["none", "empty-id", "empty-token", "int-value"],
)
async def test_update_record_invalid(store, record):
    await store.create_record(make_record(1))

    with pytest.raises(ValidationError):
        await store.update_record(record)


# delete_record_by_id / delete_record_by_token


async def test_delete_record_by_id(store):
    await store.create_record(make_record(1))
    await store.create_record(make_record(2))

    assert await store.delete_record_by_id("record-1") is True
    assert await store.find_record_by_id("record-1", include_soft_deleted=True) is None
    assert await store.find_record_by_id("record-2") == make_record(2)


async def test_delete_record_by_id_missing(store):
    await store.create_record(make_record(1))

    assert await store.delete_record_by_id("record-9") is False


async def test_delete_record_by_id_twice(store):
    await store.create_record(make_record(1))
    await store.delete_record_by_id("record-1")

    assert await store.delete_record_by_id("record-1") is False


async def test_delete_record_by_id_soft_deleted(store):
    await store.create_record(make_record(1, soft_deleted_at=T0))

    assert await store.delete_record_by_id("record-1") is True
    assert await store.count_records(RecordQuery(include_soft_deleted=True)) == 0


async def test_delete_record_by_token(store):
    await store.create_record(make_record(1))
    await store.create_record(make_record(2))

    assert await store.delete_record_by_token("token-1") is True
    assert (
        await store.find_record_by_token("token-1", include_soft_deleted=True) is None
    )
    assert await store.find_record_by_token("token-2") == make_record(2)


async def test_delete_record_by_token_missing(store):
    await store.create_record(make_record(1))

    assert await store.delete_record_by_token("token-9") is False


async def test_delete_record_by_token_soft_deleted(store):
    await store.create_record(make_record(1, soft_deleted_at=T0))

    assert await store.delete_record_by_token("token-1") is True
    assert await store.count_records(RecordQuery(include_soft_deleted=True)) == 0


async def test_delete_record_exact_token(store):
    await store.create_record(make_record(1, token="pl%n"))
    await store.create_record(make_record(2, token="plain"))
    await store.create_record(make_record(3, token="pl_n"))

    assert await store.delete_record_by_token("pl%n") is True
    assert await store.find_record_by_token("plain") is not None
    assert await store.find_record_by_token("pl_n") is not None


# soft_delete_record_by_id / soft_delete_record_by_token


async def test_soft_delete_record_by_id(store):
    await store.create_record(make_record(1))
    before = datetime.now(UTC) - timedelta(seconds=1)

    await store.soft_delete_record_by_id("record-1")

    found = await store.find_record_by_id("record-1", include_soft_deleted=True)
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert await store.find_record_by_id("record-1") is None
    assert found is not None
    assert found.soft_deleted_at is not None
    assert before <= found.soft_deleted_at <= after


async def test_soft_delete_record_by_id_missing(store):
    with pytest.raises(TokenNotFoundError):
        await store.soft_delete_record_by_id("record-9")


async def test_soft_delete_record_by_id_twice(store):
    await store.create_record(make_record(1))
    await store.soft_delete_record_by_id("record-1")
    first = await store.find_record_by_id("record-1", include_soft_deleted=True)

    with pytest.raises(TokenNotFoundError):
        await store.soft_delete_record_by_id("record-1")

    second = await store.find_record_by_id("record-1", include_soft_deleted=True)
    assert second == first


async def test_soft_delete_record_by_token(store):
    await store.create_record(make_record(1))
    await store.create_record(make_record(2))

    await store.soft_delete_record_by_token("token-1")

    assert await store.find_record_by_token("token-1") is None
    assert await store.find_record_by_token("token-2") == make_record(2)


async def test_soft_delete_record_by_token_missing(store):
    with pytest.raises(TokenNotFoundError):
        await store.soft_delete_record_by_token("token-9")


async def test_soft_delete_record_by_token_twice(store):
    await store.create_record(make_record(1))
    await store.soft_delete_record_by_token("token-1")

    with pytest.raises(TokenNotFoundError):
        await store.soft_delete_record_by_token("token-1")


async def test_soft_deleted_token_unreadable(store):
    token = await store.create_token("value", PASSWORD)

    await store.soft_delete_record_by_token(token)

    with pytest.raises(TokenNotFoundError):
        await store.read_token(token, PASSWORD)


@pytest.mark.parametrize(
    ("method", "argument"),
    [
        ("delete_record_by_id", ""),
        ("delete_record_by_id", 12),
        ("delete_record_by_token", ""),
        ("delete_record_by_token", None),
        ("soft_delete_record_by_id", ""),
        ("soft_delete_record_by_id", "x" * 256),
        ("soft_delete_record_by_token", ""),
        ("soft_delete_record_by_token", b"token-1"),
    ],
    ids=[
        "delete-id-empty",
        "delete-id-int",
        "delete-token-empty",
        "delete-token-none",
        "soft-id-empty",
        "soft-id-long",
        "soft-token-empty",
        "soft-token-bytes",
    ],
)
async def test_delete_invalid_arguments(store, method, argument):
    await store.create_record(make_record(1))

    with pytest.raises(ValidationError):
        await getattr(store, method)(argument)

    assert await store.count_records() == 1

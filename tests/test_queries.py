"""RecordQuery filters, ordering and paging on every backend, checked
against the same query worked out in Python over the same records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from vaultstore_async import Record, RecordQuery, ValidationError

T0 = datetime(2024, 3, 1, tzinfo=UTC)
PAST = datetime(2020, 6, 1, tzinfo=UTC)
FUTURE = datetime(2100, 6, 1, tzinfo=UTC)
ORDER_FIELDS = [
    "id",
    "token",
    "created_at",
    "updated_at",
    "expires_at",
    "soft_deleted_at",
]


def hours(count: float) -> datetime:
    return T0 + timedelta(hours=count)


# Ids and tokens mix case, accents, emoji, spaces and LIKE wildcards, so
# that ordering by them checks code-point order on every backend. Several
# rows share created_at, updated_at, expires_at or soft_deleted_at, so ties
# must fall back to id.
ROWS = [
    # id, token, created, updated, expires_at, soft_deleted_at
    ("a01", "tok-m", 5, 1, None, None),
    ("a02", "tok-A", 1, 1, PAST, None),
    ("B03", "tok-z", 3, 2, FUTURE, hours(20)),
    ("b04", "tok-é", 3, 3, None, None),
    ("é05", "tok-Z", 7, 5, PAST, None),
    ("Z06", "tok-a", 2, 8, FUTURE, hours(21)),
    ("a07", "tok-🔑", 9, 13, FUTURE, None),
    ("a08", "tok- ", 3, 21, None, hours(20)),
    ("c09", "tok-%", 4, 2, PAST, None),
    ("c10", "tok-_", 8, 1, None, None),
    ("🔑11", "tok-ß", 6, 0, hours(-100), hours(22)),
    ("d12", "tok-0", 10, 4, FUTURE, None),
    ("a 13", "tok-ss", 11, 4, hours(-100), None),
]
RECORDS = [
    Record(
        id=record_id,
        token=token,
        value=f"stored value {index}",
        created_at=hours(created),
        updated_at=hours(updated),
        expires_at=expires,
        soft_deleted_at=deleted,
    )
    for index, (record_id, token, created, updated, expires, deleted) in enumerate(ROWS)
]


def is_expired(record: Record, now: datetime) -> bool:
    return record.expires_at is not None and record.expires_at <= now


def matches(record: Record, query: RecordQuery, now: datetime) -> bool:
    if query.only_soft_deleted:
        if record.soft_deleted_at is None:
            return False
    elif not query.include_soft_deleted and record.soft_deleted_at is not None:
        return False
    checks = [
        query.id is None or record.id == query.id,
        query.id_in is None or record.id in query.id_in,
        query.token is None or record.token == query.token,
        query.token_in is None or record.token in query.token_in,
        query.expired is None or is_expired(record, now) == query.expired,
        query.created_after is None or record.created_at > query.created_after,
        query.created_before is None or record.created_at < query.created_before,
    ]
    return all(checks)


def sort_key(record: Record, order_by: str) -> tuple:
    # NULL (no expiry, not deleted) sorts after every time, and id breaks ties.
    value = getattr(record, order_by)
    return (value is None, value, record.id)


def python_query(query: RecordQuery, records: list[Record] = RECORDS) -> list[Record]:
    """Return what `list_records(query)` should return, worked out in Python."""
    now = datetime.now(UTC)
    selected = [record for record in records if matches(record, query, now)]
    order_by = query.order_by or "created_at"
    selected.sort(
        key=lambda record: sort_key(record, order_by), reverse=query.descending
    )
    start = query.offset or 0
    stop = None if query.limit is None else start + query.limit
    return selected[start:stop]


def ids(records: list[Record]) -> list[str]:
    return [record.id for record in records]


@pytest.fixture
async def filled(store):
    for record in RECORDS:
        await store.create_record(record)
    return store


FILTER_QUERIES = {
    "default": RecordQuery(),
    "live-explicit": RecordQuery(include_soft_deleted=False),
    "include-deleted": RecordQuery(include_soft_deleted=True),
    "only-deleted": RecordQuery(only_soft_deleted=True),
    "only-deleted-include": RecordQuery(
        only_soft_deleted=True, include_soft_deleted=True
    ),
    "expired": RecordQuery(expired=True),
    "not-expired": RecordQuery(expired=False),
    "expired-either": RecordQuery(expired=None),
    "expired-include-deleted": RecordQuery(expired=True, include_soft_deleted=True),
    "not-expired-include-deleted": RecordQuery(
        expired=False, include_soft_deleted=True
    ),
    "expired-only-deleted": RecordQuery(expired=True, only_soft_deleted=True),
    "id": RecordQuery(id="b04"),
    "id-soft-deleted": RecordQuery(id="B03"),
    "id-soft-deleted-included": RecordQuery(id="B03", include_soft_deleted=True),
    "id-unknown": RecordQuery(id="zz99"),
    "id-case": RecordQuery(id="A01"),
    "id-in": RecordQuery(id_in=["a01", "é05", "🔑11", "zz99"]),
    "id-in-deleted": RecordQuery(
        id_in=["a01", "é05", "🔑11"], include_soft_deleted=True
    ),
    "id-in-tuple": RecordQuery(id_in=("c09", "c10")),
    "token": RecordQuery(token="tok-%"),
    "token-space": RecordQuery(token="tok- ", include_soft_deleted=True),
    "token-sharp-s": RecordQuery(token="tok-ß", include_soft_deleted=True),
    "token-ss": RecordQuery(token="tok-ss"),
    "token-case": RecordQuery(token="tok-a", include_soft_deleted=True),
    "token-in": RecordQuery(token_in=["tok-A", "tok-Z", "tok-_", "tok-none"]),
    "token-in-deleted": RecordQuery(
        token_in={"tok-z", "tok-m"}, include_soft_deleted=True
    ),
    "created-after": RecordQuery(created_after=hours(3.5)),
    "created-before": RecordQuery(created_before=hours(3.5)),
    "created-between": RecordQuery(created_after=hours(2.5), created_before=hours(8.5)),
    "created-after-offset-zone": RecordQuery(
        created_after=datetime(2024, 3, 1, 7, 30, tzinfo=timezone(timedelta(hours=5)))
    ),
    "created-between-deleted": RecordQuery(
        created_after=hours(1.5), created_before=hours(6.5), include_soft_deleted=True
    ),
    "combined": RecordQuery(
        id_in=["a01", "a02", "b04", "é05", "c09", "d12"],
        expired=False,
        created_before=hours(9.5),
    ),
}

PAGED_QUERIES = {
    "limit": RecordQuery(limit=3),
    "limit-zero": RecordQuery(limit=0),
    "limit-past-end": RecordQuery(limit=100),
    "offset": RecordQuery(offset=4),
    "offset-past-end": RecordQuery(offset=100),
    "limit-offset": RecordQuery(limit=3, offset=2),
    "limit-offset-descending": RecordQuery(limit=4, offset=1, descending=True),
    "limit-offset-token": RecordQuery(
        limit=5, offset=3, order_by="token", include_soft_deleted=True
    ),
    "limit-offset-expires-desc": RecordQuery(
        limit=5,
        offset=2,
        order_by="expires_at",
        descending=True,
        include_soft_deleted=True,
    ),
}

ORDER_QUERIES = {
    f"{field}-{direction}": RecordQuery(
        order_by=field, descending=direction == "desc", include_soft_deleted=True
    )
    for field in ORDER_FIELDS
    for direction in ("asc", "desc")
}


async def mismatches(store, queries, method="list_records", **options):
    """Run every query and return {case: (got ids, expected ids)} for those
    that differ from the Python reference."""
    found = {}
    for name, query in queries.items():
        if method == "iter_records":
            got = ids(await collect(store, query, **options))
        else:
            got = ids(await getattr(store, method)(query))
        expected = ids(python_query(query))
        if got != expected:
            found[name] = (got, expected)
    return found


async def collect(store, query=None, **options) -> list[Record]:
    return [record async for record in store.iter_records(query, **options)]


# list_records


async def test_list_records_filters(filled):
    assert await mismatches(filled, FILTER_QUERIES) == {}


async def test_list_records_paging(filled):
    assert await mismatches(filled, PAGED_QUERIES) == {}


async def test_list_records_order(filled):
    assert await mismatches(filled, ORDER_QUERIES) == {}


async def test_list_records_order_live_only(filled):
    queries = {
        f"{field}-{direction}": RecordQuery(
            order_by=field, descending=direction == "desc"
        )
        for field in ORDER_FIELDS
        for direction in ("asc", "desc")
    }

    assert await mismatches(filled, queries) == {}


async def test_list_records_default_order(filled):
    live = [record for record in RECORDS if record.soft_deleted_at is None]
    expected = sorted(live, key=lambda record: (record.created_at, record.id))

    assert await filled.list_records() == expected


async def test_list_records_none_query(filled):
    assert await filled.list_records(None) == await filled.list_records(RecordQuery())


async def test_list_records_full_records(filled):
    query = RecordQuery(include_soft_deleted=True, order_by="id")

    assert await filled.list_records(query) == python_query(query)


async def test_list_records_excludes_soft_deleted(filled):
    records = await filled.list_records(RecordQuery(include_soft_deleted=False))

    assert [record.id for record in records if record.soft_deleted_at is not None] == []
    assert len(records) == 9


async def test_list_records_includes_soft_deleted(filled):
    records = await filled.list_records(RecordQuery(include_soft_deleted=True))

    assert len(records) == len(RECORDS)


async def test_list_records_only_soft_deleted(filled):
    records = await filled.list_records(RecordQuery(only_soft_deleted=True))

    assert sorted(ids(records)) == sorted(["B03", "Z06", "a08", "🔑11"])


async def test_list_records_ascending_explicit(filled):
    for field in ORDER_FIELDS:
        implicit = await filled.list_records(
            RecordQuery(order_by=field, include_soft_deleted=True)
        )
        explicit = await filled.list_records(
            RecordQuery(order_by=field, descending=False, include_soft_deleted=True)
        )
        descending = await filled.list_records(
            RecordQuery(order_by=field, descending=True, include_soft_deleted=True)
        )
        assert ids(explicit) == ids(implicit), field
        assert ids(descending) == ids(implicit)[::-1], field
        assert ids(explicit) != ids(descending), field


async def test_list_records_expiry_nulls_last(filled):
    records = await filled.list_records(RecordQuery(order_by="expires_at"))

    expiries = [record.expires_at for record in records]
    first_null = expiries.index(None)
    assert all(expiry is None for expiry in expiries[first_null:])
    assert None not in expiries[:first_null]


async def test_list_records_empty_table(store):
    assert await store.list_records() == []


# count_records


async def test_count_records_filters(filled):
    wrong = {}
    for name, query in FILTER_QUERIES.items():
        got = await filled.count_records(query)
        expected = len(python_query(query))
        if got != expected:
            wrong[name] = (got, expected)

    assert wrong == {}


async def test_count_records_ignores_paging(filled):
    wrong = {}
    for name, query in {**PAGED_QUERIES, **ORDER_QUERIES}.items():
        got = await filled.count_records(query)
        unpaged = RecordQuery(include_soft_deleted=query.include_soft_deleted)
        expected = len(python_query(unpaged))
        if got != expected:
            wrong[name] = (got, expected)

    assert wrong == {}


async def test_count_records_default(filled):
    assert await filled.count_records() == 9


async def test_count_records_empty_table(store):
    assert await store.count_records() == 0


# iter_records


@pytest.mark.parametrize("page_size", [1, 2, 3, 5, 500])
async def test_iter_records_order(filled, page_size):
    different = {}
    for name, query in ORDER_QUERIES.items():
        listed = ids(await filled.list_records(query))
        iterated = ids(await collect(filled, query, page_size=page_size))
        if iterated != listed:
            different[name] = (iterated, listed)

    assert different == {}


async def test_iter_records_order_matches_python(filled):
    assert await mismatches(filled, ORDER_QUERIES, "iter_records", page_size=2) == {}


async def test_iter_records_live_rows(filled):
    queries = {
        f"{field}-{direction}": RecordQuery(
            order_by=field, descending=direction == "desc"
        )
        for field in ORDER_FIELDS
        for direction in ("asc", "desc")
    }

    assert await mismatches(filled, queries, "iter_records", page_size=2) == {}


@pytest.mark.parametrize("page_size", [1, 2, 3])
async def test_iter_records_paging(filled, page_size):
    assert (
        await mismatches(filled, PAGED_QUERIES, "iter_records", page_size=page_size)
        == {}
    )


async def test_iter_records_filters(filled):
    assert await mismatches(filled, FILTER_QUERIES, "iter_records", page_size=2) == {}


async def test_iter_records_default(filled):
    found = await collect(filled, page_size=2)

    assert found == await filled.list_records()


async def test_iter_records_empty_table(store):
    assert await collect(store, page_size=2) == []


async def test_iter_records_ties_across_pages(store):
    # Eleven rows share one created_at and one updated_at, so every page
    # boundary falls on a tie.
    same = [
        Record(
            id=f"tie-{index:02d}",
            token=f"token-{index:02d}",
            value="stored",
            created_at=T0,
            updated_at=T0,
            expires_at=None if index % 2 else FUTURE,
        )
        for index in range(11)
    ]
    for record in same:
        await store.create_record(record)

    different = {}
    for field in ("created_at", "expires_at", "updated_at"):
        for descending in (False, True):
            query = RecordQuery(order_by=field, descending=descending)
            found = ids(await collect(store, query, page_size=3))
            expected = ids(python_query(query, same))
            if found != expected:
                different[f"{field} descending={descending}"] = (found, expected)

    assert different == {}


async def test_iter_records_invalid_page_size(filled):
    for page_size in (0, -1, 1.5, True, "2", None):
        with pytest.raises(ValidationError):
            await collect(filled, page_size=page_size)


# RecordQuery validation


@pytest.mark.parametrize(
    "options",
    [
        {"order_by": "value"},
        {"order_by": "vault_token"},
        {"order_by": "created_at DESC"},
        {"order_by": "id; DROP TABLE vault"},
        {"order_by": ""},
        {"order_by": 1},
        {"id_in": []},
        {"id_in": ()},
        {"id_in": "a01"},
        {"id_in": [1]},
        {"id_in": [""]},
        {"token_in": []},
        {"token_in": set()},
        {"token_in": "tok-m"},
        {"token_in": [None]},
        {"limit": -1},
        {"offset": -1},
        {"limit": 1.5},
        {"limit": "10"},
        {"limit": True},
        {"offset": "1"},
        {"id": ""},
        {"id": 12},
        {"token": ""},
        {"token": "x" * 256},
        {"descending": 1},
        {"descending": "false"},
        {"descending": None},
        {"include_soft_deleted": 0},
        {"include_soft_deleted": "no"},
        {"only_soft_deleted": 1},
        {"expired": "yes"},
        {"expired": 0},
        {"created_after": datetime(2024, 1, 1)},
        {"created_before": "2024-01-01"},
    ],
    ids=lambda options: repr(options)[:40],
)
def test_record_query_invalid(options):
    with pytest.raises(ValidationError):
        RecordQuery(**options)


def test_record_query_positional_rejected():
    with pytest.raises(TypeError):
        RecordQuery("a01")


@pytest.mark.parametrize("field", ORDER_FIELDS)
def test_record_query_order_fields(field):
    assert RecordQuery(order_by=field).order_by == field


def test_record_query_defaults():
    query = RecordQuery()

    assert query.descending is False
    assert query.include_soft_deleted is False
    assert query.only_soft_deleted is False
    assert query.expired is None
    assert query.limit is None
    assert query.offset is None


async def test_query_argument_type(filled):
    for query in ({}, "created_at", 1):
        for method in ("list_records", "count_records"):
            with pytest.raises(ValidationError):
                await getattr(filled, method)(query)
        with pytest.raises(ValidationError):
            await collect(filled, query)

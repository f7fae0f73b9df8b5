"""Driver-level inserts, upserts and reads store and return exactly what SQLAlchemy Core would, on every backend."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.bulk import (
    Query,
    Write,
    bind_converter,
    execute_all,
    fetch_all,
    fetch_rows,
    insert_rows,
    insert_statement,
    placeholders,
    select_rows,
    upsert_statement,
    write_all,
)
from gateway.store.sqlite_thread import sqlite_thread
from gateway.store.tables import (
    business_units,
    instruction_events,
    instructions,
    risk_beneficiaries,
    risk_names,
    risk_pairs,
    risk_recent,
)

NOW = datetime(2026, 11, 26, 12, 30, 15, 123456, tzinfo=UTC)
LATER = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)  # no microseconds


def _instruction(instruction_id: str, reference: str) -> dict[str, object]:
    return {
        "id": instruction_id,
        "business_unit_id": "bu_1",
        "reference": reference,
        "type": "credit_transfer",
        "amount": "1250.00",
        "amount_minor": 125000,
        "currency": "EUR",
        "status": "received",
        "debtor_name": "Ä debtor — ünïcode",
        "debtor_account": "k$abc",
        "debtor_agent": None,
        "creditor_name": "Creditor",
        "creditor_account": "k$def",
        "creditor_agent": "COBADEFFXXX",
        "masked": {"debtor": {"iban": "DE89****3000"}, "creditor": {"wallet": "***x"}},
        "remittance_information": None,
        "requested_execution_date": date(2026, 11, 27),
        "urgency": "standard",
        "channel": None,
        "metadata": {"order": "SO-778", "empty": ""},
        "contract_version": "1.1",
        "adapter": None,
        "partner_reference": None,
        "event_count": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }


async def test_bulk_insert_round_trips_like_sqlalchemy_core(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(business_units.insert().values(id="bu_1", name="erp", created_at=NOW))
        await conn.execute(instructions.insert(), [_instruction("ins_core", "REF-1")])
        await insert_rows(conn, instructions, [_instruction("ins_bulk", "REF-2")])
        event = {
            "instruction_id": "ins_bulk",
            "sequence": 1,
            "previous_status": None,
            "status": "received",
            "applied": True,
            "outcome": "applied",
            "source": "api",
            "adapter": None,
            "partner_reference": None,
            "partner_status": None,
            "reason_code": None,
            "reason": None,
            "occurred_at": NOW,
        }
        await insert_rows(conn, instruction_events, [event, {**event, "sequence": 2, "applied": False}])
    async with engine.connect() as conn:
        rows = {r["id"]: dict(r) for r in (await conn.execute(select(instructions))).mappings()}
        events = (
            (await conn.execute(select(instruction_events).order_by(instruction_events.c.sequence))).mappings().all()
        )
        # ordering and range queries over the bulk-written timestamps work like over Core-written ones
        later = await conn.scalar(
            select(instructions.c.id).where(instructions.c.created_at >= NOW).order_by(instructions.c.id)
        )
    core, bulk = rows.pop("ins_core"), rows.pop("ins_bulk")
    assert {k: v for k, v in bulk.items() if k not in ("id", "reference")} == {
        k: v for k, v in core.items() if k not in ("id", "reference")
    }
    assert bulk["created_at"] == NOW and bulk["requested_execution_date"] == date(2026, 11, 27)
    assert bulk["metadata"] == {"order": "SO-778", "empty": ""}
    assert [e["applied"] for e in events] == [True, False]
    assert events[0]["occurred_at"] == NOW
    assert later == "ins_bulk"


async def test_rows_sharing_a_json_value_and_any_timestamp_store_what_core_stores(engine: AsyncEngine) -> None:
    """One JSON object shared by rows that are not neighbours; timestamps with and without microseconds, not in UTC."""
    shared = {"debtor": {"iban": "DE89****3000"}, "creditor": {"wallet": "***x"}}
    other = {"debtor": {"number": "****6789", "routing": "021000021"}, "creditor": {"wallet": "***y"}}
    plus_two = timezone(timedelta(hours=2))
    stamps = [NOW, LATER, datetime(2026, 11, 26, 15, 0, 0, 7, tzinfo=plus_two), datetime(1999, 1, 1, tzinfo=UTC)]
    masks = [shared, other, shared, {}]
    rows = [
        {**_instruction(f"ins_{k}", f"REF-{k}"), "masked": mask, "created_at": at, "updated_at": at}
        for k, (mask, at) in enumerate(zip(masks, stamps, strict=True))
    ]
    async with engine.begin() as conn:
        await conn.execute(business_units.insert().values(id="bu_1", name="erp", created_at=NOW))
        await conn.execute(
            instructions.insert(), [{**r, "id": f"core_{r['id']}", "reference": "C" + r["reference"]} for r in rows]
        )
        await insert_rows(conn, instructions, rows)
    async with engine.connect() as conn:
        stored = {r["id"]: dict(r) for r in (await conn.execute(select(instructions))).mappings()}
        raw = dict((await conn.exec_driver_sql("SELECT id, CAST(created_at AS TEXT) FROM instructions")).all())
    for r in rows:
        bulk, core = stored[r["id"]], stored[f"core_{r['id']}"]
        assert bulk["masked"] == core["masked"] == r["masked"]
        assert bulk["created_at"] == core["created_at"] == r["created_at"]
        assert raw[r["id"]] == raw[f"core_{r['id']}"]  # the stored text too: SQLite orders and compares it


def _pair(creditor: str, count: int, amounts: list[int], at: datetime) -> dict[str, object]:
    return {
        "creditor_key": creditor,
        "debtor_key": "d1",
        "business_unit": "erp",
        "currency": "EUR",
        "count": count,
        "amounts": amounts,
        "updated_at": at,
    }


async def test_upserts_store_what_a_core_upsert_stores(engine: AsyncEngine) -> None:
    keys = ("creditor_key", "debtor_key", "business_unit", "currency")
    later = LATER
    async with engine.begin() as conn:
        await write_all(
            conn, [Write(risk_pairs, [_pair("c_bulk", 1, [100], NOW)], keys, add=("count",))], one_hop=False
        )
        await write_all(
            conn, [Write(risk_pairs, [_pair("c_bulk", 2, [100, 250], later)], keys, add=("count",))], one_hop=False
        )
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        for row in (_pair("c_core", 1, [100], NOW), _pair("c_core", 2, [100, 250], later)):
            stmt = dialect.insert(risk_pairs)
            stmt = stmt.on_conflict_do_update(
                index_elements=keys,
                set_={
                    "count": risk_pairs.c.count + stmt.excluded.count,
                    "amounts": stmt.excluded.amounts,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
            await conn.execute(stmt, [row])
        # keep: the stored value stays
        first_seen = {"creditor_key": "c1", "business_unit": "erp", "count": 1, "max_minor": 5}
        unit_key = ("creditor_key", "business_unit")
        await write_all(conn, [Write(risk_beneficiaries, [{**first_seen, "first_seen": NOW}], unit_key)], one_hop=False)
        stored = Write(
            risk_beneficiaries, [{**first_seen, "first_seen": later, "count": 2}], unit_key, keep=("first_seen",)
        )
        await write_all(conn, [stored], one_hop=False)
    async with engine.connect() as conn:
        pairs = {r["creditor_key"]: dict(r) for r in (await conn.execute(select(risk_pairs))).mappings()}
        beneficiary = (await conn.execute(select(risk_beneficiaries))).one()
    core, bulk = pairs["c_core"], pairs["c_bulk"]
    assert {**bulk, "creditor_key": "c_core"} == core
    assert bulk["count"] == 3 and bulk["amounts"] == [100, 250] and bulk["updated_at"] == later
    assert (beneficiary.first_seen, beneficiary.count) == (NOW, 2)


async def test_fetch_rows_reads_back_what_core_reads(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(business_units.insert().values(id="bu_1", name="erp", created_at=NOW))
        await insert_rows(conn, instructions, [_instruction("ins_1", "REF-1")])
        await insert_rows(
            conn,
            instructions,
            [{**_instruction("ins_2", "REF-2"), "requested_execution_date": None, "masked": {}, "created_at": LATER}],
        )
    columns = ("id", "masked", "metadata", "requested_execution_date", "created_at", "amount_minor", "debtor_name")
    async with engine.connect() as conn:
        quote = conn.dialect.identifier_preparer.quote
        sql = (
            f"SELECT {', '.join(quote(c) for c in columns)} FROM instructions "
            f"WHERE id IN ({placeholders(conn.dialect, 2)}) AND created_at >= {placeholders(conn.dialect, 1, 3)} "
            "ORDER BY id"
        )
        since = bind_converter(instructions.c.created_at, conn.dialect)(NOW)
        fetched = await fetch_rows(conn, sql, ["ins_1", "ins_2", since], instructions, columns)
        core = (await conn.execute(select(*(instructions.c[c] for c in columns)).order_by(instructions.c.id))).all()
    assert [tuple(r) for r in fetched] == [tuple(r) for r in core]
    assert fetched[0][1] == {"debtor": {"iban": "DE89****3000"}, "creditor": {"wallet": "***x"}}
    assert fetched[0][4] == NOW and fetched[0][4].tzinfo is not None
    assert fetched[1][1] == {} and fetched[1][3] is None and fetched[1][4] == LATER


async def test_select_rows_gives_build_the_rows_core_reads_with_expanded_parameters(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(business_units.insert().values(id="bu_1", name="erp", created_at=NOW))
        rows = [_instruction(f"ins_{i}", f"REF-{i}") for i in range(1, 5)]
        rows[1] = {**rows[1], "adapter": "bank", "partner_reference": "BNK-2"}
        rows[2] = {**rows[2], "adapter": "card", "status": "settled"}
        rows[3] = {**rows[3], "adapter": "bank", "creditor_name": "Ü other"}
        await insert_rows(conn, instructions, rows)
    t = instructions.c
    query = (
        select(t.id, t.reference, t.partner_reference, t.adapter, t.amount_minor, t.creditor_name)
        .join(business_units, business_units.c.id == t.business_unit_id)
        .where(t.adapter.in_(["bank", "card"]), t.status == "received")
        .order_by(t.id)
    )
    seen: list[int] = []

    def build(found: object) -> list[tuple[object, ...]]:
        out = [tuple(r) for r in found]  # type: ignore[attr-defined]
        seen.append(len(out))
        return out

    async with engine.connect() as conn:
        fetched = await select_rows(conn, query, build)
        core = [tuple(r) for r in (await conn.execute(query)).all()]
    assert (
        fetched
        == core
        == [
            ("ins_2", "REF-2", "BNK-2", "bank", 125000, "Creditor"),
            ("ins_4", "REF-4", None, "bank", 125000, "Ü other"),
        ]
    )
    assert seen == [2]  # build ran once, over every row


ONE_HOP = pytest.mark.parametrize("one_hop", [True, False], ids=["one-hop", "statement-by-statement"])


@ONE_HOP
async def test_fetch_all_reads_each_query_as_fetch_rows_does(engine: AsyncEngine, one_hop: bool) -> None:
    keys = ("creditor_key", "debtor_key", "business_unit", "currency")
    async with engine.begin() as conn:
        await conn.execute(business_units.insert().values(id="bu_1", name="erp", created_at=NOW))
        await insert_rows(conn, instructions, [_instruction("ins_1", "REF-1"), _instruction("ins_2", "REF-2")])
        await write_all(
            conn,
            [Write(risk_pairs, [_pair("c1", 2, [100, 250], NOW), _pair("c2", 1, [7], LATER)], keys)],
            one_hop=False,
        )
    columns = ("id", "masked", "requested_execution_date", "created_at")
    pair_columns = ("creditor_key", "amounts", "updated_at")
    async with engine.connect() as conn:
        mark = placeholders(conn.dialect, 1)
        queries = [
            Query(instructions, columns, "ORDER BY id", ()),
            Query(risk_pairs, pair_columns, f"WHERE creditor_key = {mark}", ["c2"]),
            Query(risk_pairs, pair_columns, f"WHERE creditor_key = {mark}", ["none"]),
            Query(
                risk_pairs,
                pair_columns,
                f"WHERE creditor_key IN ({placeholders(conn.dialect, 2)}) ORDER BY count DESC",
                ["c1", "c2"],
            ),
        ]
        one_by_one = [await fetch_rows(conn, q.sql(conn.dialect), q.params, q.table, q.columns) for q in queries]
        fetched = await fetch_all(conn, queries, one_hop=one_hop)
        assert await fetch_all(conn, [], one_hop=one_hop) == []
        in_thread = await sqlite_thread(conn, enabled=one_hop) is not None
    assert in_thread == (one_hop and engine.dialect.name == "sqlite")
    assert [[tuple(r) for r in rows] for rows in fetched] == [[tuple(r) for r in rows] for rows in one_by_one]
    assert [r[0] for r in fetched[0]] == ["ins_1", "ins_2"] and fetched[0][0][3] == NOW
    assert [tuple(r) for r in fetched[1]] == [("c2", [7], LATER)] and fetched[2] == []
    assert [r[0] for r in fetched[3]] == ["c1", "c2"]  # each query's own order


@ONE_HOP
async def test_execute_all_writes_what_each_statement_writes_inside_the_callers_transaction(
    engine: AsyncEngine, one_hop: bool
) -> None:
    keys = ("creditor_key", "debtor_key", "business_unit", "currency")
    async with engine.begin() as conn:
        dialect = conn.dialect
        await execute_all(
            conn,
            [
                upsert_statement(risk_pairs, [_pair("c1", 1, [100], NOW), _pair("c2", 1, [5], NOW)], keys, dialect),
                upsert_statement(risk_pairs, [_pair("c1", 2, [100, 250], LATER)], keys, dialect, add=("count",)),
            ],
            one_hop=one_hop,
        )
    async with engine.connect() as conn:
        pairs = {r.creditor_key: (r.count, r.amounts, r.updated_at) for r in await conn.execute(select(risk_pairs))}
    assert pairs == {"c1": (3, [100, 250], LATER), "c2": (1, [5], NOW)}
    # rolled back with the caller's transaction, like any other statement
    async with engine.connect() as conn:
        tx = await conn.begin()
        await execute_all(
            conn, [upsert_statement(risk_pairs, [_pair("c3", 1, [1], NOW)], keys, dialect)], one_hop=one_hop
        )
        await tx.rollback()
    # a failing statement fails the call; the caller's rollback undoes the statements before it
    with pytest.raises((IntegrityError, sqlite3.IntegrityError)):
        async with engine.begin() as conn:
            await execute_all(
                conn,
                [
                    upsert_statement(risk_pairs, [_pair("c4", 1, [1], NOW)], keys, dialect),
                    insert_statement(risk_pairs, [_pair("c1", 1, [1], NOW)], dialect),  # c1 exists: no upsert
                ],
                one_hop=one_hop,
            )
    async with engine.connect() as conn:
        assert sorted(r.creditor_key for r in await conn.execute(select(risk_pairs))) == ["c1", "c2"]


def _recent(instruction_id: str, at: datetime) -> dict[str, object]:
    return {
        "creditor_key": "c1",
        "business_unit": "erp",
        "at": at,
        "instruction_id": instruction_id,
        "currency": "EUR",
        "amount_minor": 100,
        "remittance": f"invoice {instruction_id}",
    }


def _beneficiary(creditor: str, first_seen: datetime, count: int) -> dict[str, object]:
    return {"creditor_key": creditor, "business_unit": "erp", "first_seen": first_seen, "count": count, "max_minor": 9}


def _as_tuples(write: Write) -> Write:
    """The same write with its rows as tuples in a column order of their own (``Write.columns``)."""
    if not write.rows:
        return write
    columns = tuple(reversed(tuple(write.rows[0])))
    rows = [tuple(row[c] for c in columns) for row in write.rows]
    return Write(write.table, rows, write.keys, write.add, write.keep, columns=columns)


@ONE_HOP
@pytest.mark.parametrize("tuples", [False, True], ids=["dicts", "tuples"])
async def test_write_all_stores_what_one_executemany_per_table_stores(
    engine: AsyncEngine, one_hop: bool, tuples: bool
) -> None:
    pair_keys = ("creditor_key", "debtor_key", "business_unit", "currency")
    beneficiary_keys = ("creditor_key", "business_unit")
    first = [
        Write(risk_pairs, [_pair("c1", 1, [100], NOW), _pair("c2", 1, [5], NOW)], pair_keys),
        Write(risk_beneficiaries, [_beneficiary("c1", NOW, 1)], beneficiary_keys, keep=("first_seen",)),
        Write(risk_recent, [_recent("ins_b", LATER), _recent("ins_a", NOW)]),  # ids follow the rows' order
        Write(risk_names, [], ("creditor_name", "business_unit", "creditor_key")),  # nothing to write: skipped
    ]
    second = [
        Write(risk_pairs, [_pair("c1", 2, [100, 250], LATER)], pair_keys, add=("count",)),
        Write(risk_beneficiaries, [_beneficiary("c1", LATER, 2)], beneficiary_keys, keep=("first_seen",)),
        Write(risk_recent, [_recent("ins_c", NOW)]),
    ]
    if tuples:
        first, second = [_as_tuples(w) for w in first], [_as_tuples(w) for w in second]
    async with engine.begin() as conn:
        await write_all(conn, first, one_hop=one_hop)
        await write_all(conn, second, one_hop=one_hop)
        await write_all(conn, [], one_hop=one_hop)
    async with engine.connect() as conn:
        tx = await conn.begin()  # rolled back with the caller's transaction, like any other statement
        await write_all(conn, [Write(risk_recent, [_recent("ins_x", NOW)]), *second[:2]], one_hop=one_hop)
        await tx.rollback()
        pairs = {r.creditor_key: (r.count, r.amounts, r.updated_at) for r in await conn.execute(select(risk_pairs))}
        beneficiaries = [(r.first_seen, r.count) for r in await conn.execute(select(risk_beneficiaries))]
        recent = [(r.instruction_id, r.at) for r in await conn.execute(select(risk_recent).order_by(risk_recent.c.id))]
    assert pairs == {"c1": (3, [100, 250], LATER), "c2": (1, [5], NOW)}
    assert beneficiaries == [(NOW, 2)]
    assert recent == [("ins_b", LATER), ("ins_a", NOW), ("ins_c", NOW)]

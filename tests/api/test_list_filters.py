"""``GET /v1/instructions`` filters with cursor paging; unknown query parameters are a 400 on every list."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ClauseElement, Executable, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.compiler import compiles

from gateway.api.instructions import LIST_PARAMETERS, list_query
from gateway.api.openapi import build_openapi
from gateway.contracts.registry import contracts
from gateway.contracts.versions import parse_as_latest
from gateway.domain.ids import new_id
from gateway.domain.instruction import parse_instruction
from gateway.store import repo
from gateway.store.bulk import insert_rows
from gateway.store.tables import instructions
from tests.support import NOW, TEST_CODEC, LiveGateway, example_instruction


async def _create(gw: LiveGateway, **changes: Any) -> str:
    resp = await gw.post_instruction(example_instruction(**changes))
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def _list(gw: LiveGateway, key: str | None = None, path: str = "/v1/instructions", **params: str) -> Any:
    async with gw.session.get(f"{gw.url}{path}", params=params, headers=gw.headers(key)) as resp:
        return resp.status, await resp.json(content_type=None)


async def _ids(gw: LiveGateway, **params: str) -> list[str]:
    status, body = await _list(gw, **params)
    assert status == 200, body
    return [i["id"] for i in body["items"]]


async def test_filters_combine_and_page_with_a_cursor(intake_gateway: LiveGateway) -> None:
    gw = intake_gateway
    made = [await _create(gw, reference=f"FLT-{n}") for n in range(6)]
    async with gw.runtime.engine.begin() as conn:  # as the dispatcher would have routed them
        await conn.execute(
            update(instructions).where(instructions.c.id.in_(made[:4])).values(adapter="iso20022_bank", status="routed")
        )
        await conn.execute(update(instructions).where(instructions.c.id == made[4]).values(adapter="card_acquirer"))

    assert await _ids(gw, reference="FLT-3") == [made[3]]
    assert await _ids(gw, reference="FLT-404") == []
    assert await _ids(gw, adapter="card_acquirer") == [made[4]]
    assert await _ids(gw, status="received") == [made[5], made[4]]
    assert await _ids(gw, status="received", adapter="card_acquirer") == [made[4]]
    assert await _ids(gw, status="routed", reference="FLT-5") == []
    today = datetime.now(UTC).date().isoformat()
    assert len(await _ids(gw, created_from="2000-01-01", created_to="2999-12-31")) == 6
    assert len(await _ids(gw, created_from=today, created_to=today)) == 6  # a plain date is the whole day
    assert await _ids(gw, created_to="2000-01-01T00:00:00+00:00") == []

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"adapter": "iso20022_bank", "status": "routed", "limit": "3"}
        status, page = await _list(gw, **params, **({"cursor": cursor} if cursor else {}))
        assert status == 200, page
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made[:4]))


async def test_bad_filter_values_are_400_naming_the_parameter(intake_gateway: LiveGateway) -> None:
    for params, named in (
        ({"status": "paid"}, "status"),
        ({"status": ""}, "status"),
        ({"adapter": "Bad Name"}, "adapter"),
        ({"reference": "R" * 36}, "reference"),
        ({"reference": ""}, "reference"),
        ({"created_from": "yesterday"}, "created_from"),
        ({"created_to": "2026-13-01"}, "created_to"),
        ({"limit": "500"}, "limit"),
        ({"cursor": "ins_nope"}, "cursor"),
        ({"sort": "amount"}, "'sort'"),
    ):
        status, problem = await _list(intake_gateway, **params)
        assert status == 400, params
        assert problem["type"].endswith("/bad-request"), problem
        assert problem["detail"].startswith(named) or named in problem["detail"], (params, problem["detail"])


async def test_a_range_that_ends_before_it_starts_is_an_empty_page(intake_gateway: LiveGateway) -> None:
    made = await _create(intake_gateway, reference="RANGE-1")
    assert await _ids(intake_gateway, created_from="2999-02-01", created_to="2999-01-01") == []
    assert await _ids(intake_gateway, created_from="2000-02-01", created_to="2000-01-01") == []
    assert made in await _ids(intake_gateway, created_from="2000-01-01", created_to="2999-01-01")


async def test_a_parameter_given_twice_is_400(intake_gateway: LiveGateway) -> None:
    url = f"{intake_gateway.url}/v1/instructions?status=received&status=cancelled"
    async with intake_gateway.session.get(url, headers=intake_gateway.headers()) as resp:
        assert resp.status == 400
        assert "'status' is given more than once" in (await resp.json())["detail"]


async def test_every_list_endpoint_refuses_an_unknown_query_parameter(intake_gateway: LiveGateway) -> None:
    admin = await intake_gateway.new_key("operations", ("admin",))
    doc = build_openapi(contracts(), [])
    lists = [
        (path, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method == "get" and "{" not in path and op.get("security")
    ]
    assert {p for p, _ in lists} >= {"/v1/instructions", "/v1/holds", "/v1/alerts", "/v1/api-keys"}
    for path, op in lists:
        status, problem = await _list(intake_gateway, admin, path, colour="blue")
        assert status == 400, (path, problem)
        assert "unknown query parameter 'colour'" in problem["detail"]
        documented = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
        for name in documented:  # every documented parameter is one the endpoint takes
            status, problem = await _list(intake_gateway, admin, path, **{name: "x"})
            assert "unknown query parameter" not in str(problem.get("detail")), (path, name)
    instructions_op = doc["paths"]["/v1/instructions"]["get"]
    assert [p["name"] for p in instructions_op["parameters"]] == list(LIST_PARAMETERS)


# -- the list query uses an index on both backends ------------------------------------


class _Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, stmt: Any) -> None:
        self.stmt = stmt


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    prefix = "EXPLAIN QUERY PLAN " if compiler.dialect.name == "sqlite" else "EXPLAIN "
    return prefix + compiler.process(element.stmt, **kw)


async def _fill(engine: AsyncEngine, count: int) -> str:
    """``count`` instructions over 4 business units, most settled, few of each filtered value; the first BU's id."""
    data = parse_as_latest(contracts(), "instruction", "1.1", example_instruction(), parse_instruction)
    async with engine.begin() as conn:
        units = [await repo.ensure_business_unit(conn, f"bu-{n}", NOW) for n in range(4)]
        template = TEST_CODEC.new_row("ins_template", units[0], data, "1.1", NOW)
        rows = []
        for n in range(count):
            rows.append(
                {
                    **template,
                    "id": new_id("ins"),
                    "business_unit_id": units[n % 4],
                    "reference": f"REF-{n}",
                    "status": "failed" if n % 97 == 0 else "settled",
                    "adapter": "card_acquirer" if n % 89 == 0 else "iso20022_bank",
                    "created_at": NOW - timedelta(minutes=n),
                }
            )
        await insert_rows(conn, instructions, rows)
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql("ANALYZE instructions")
        else:
            await conn.exec_driver_sql("ANALYZE")
    return units[0]


async def test_each_filter_of_the_list_is_served_by_an_index(engine: AsyncEngine) -> None:
    business_unit_id = await _fill(engine, 4000)
    cases = {
        # the unique constraint's index (SQLite names it itself)
        "reference": ({"reference": "REF-8"}, "uq_instructions_business_unit_id_reference|sqlite_autoindex_"),
        "status": ({"status": "failed"}, "ix_instructions_business_unit_id_status_id"),
        "adapter": ({"adapter": "card_acquirer"}, "ix_instructions_business_unit_id_adapter_id"),
        "created": (
            {"created_from": (NOW - timedelta(minutes=30)).isoformat(), "created_to": NOW.isoformat()},
            "ix_instructions_business_unit_id_created_at",
        ),
    }
    for name, (params, index) in cases.items():
        stmt, _ = list_query(business_unit_id, params)
        async with engine.connect() as conn:
            plan = "\n".join(" ".join(str(c) for c in row) for row in await conn.execute(_Explain(stmt)))
        # SQLite: "SEARCH instructions USING INDEX name"; PostgreSQL: "Index Scan using name", "Bitmap Index Scan on"
        assert re.search(rf"(USING INDEX|Index Scan using|Index Scan on|Index Only Scan using) ({index})", plan), (
            f"{name}: {plan}"
        )

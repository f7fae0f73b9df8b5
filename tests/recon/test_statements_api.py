"""POST /v1/statements on a live gateway: finance imports a file once; a bad file is one 422 line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support import Database, LiveGateway, load_bench, start_gateway, stop_gateway

write_camt053 = load_bench("statements").write_camt053


async def _post(gw: LiveGateway, body: bytes, key: str, query: str = "", status: int = 201) -> Any:
    async with gw.session.post(f"{gw.url}/v1/statements{query}", data=body, headers=gw.headers(key)) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json(content_type=None)


async def test_finance_imports_a_real_nacha_return_file_once(intake_gateway: LiveGateway, partner_files: Path) -> None:
    gw = intake_gateway
    finance = await gw.new_key("treasury", ("finance",))
    body = (partner_files / "nacha/return-WEB.ach").read_bytes()
    first = await _post(gw, body, finance)
    assert (first["format"], first["stored"], first["lines"]) == ("nacha", 1, 2)
    again = await _post(gw, body, finance, "?format=nacha", status=200)
    assert (again["stored"], again["statements"][0]["stored"]) == (0, False)


async def test_a_file_whose_figures_do_not_add_up_is_a_422_with_one_line(
    intake_gateway: LiveGateway, partner_files: Path
) -> None:
    gw = intake_gateway
    finance = await gw.new_key("treasury", ("finance",))
    problem = await _post(gw, (partner_files / "mt940/abnamro.sta").read_bytes(), finance, status=422)
    assert problem["detail"].startswith("mt940: statement '517852257/19321/1': opening 323628 + movements")
    assert "\n" not in problem["detail"]
    unknown = await _post(gw, b"hello", finance, status=422)
    assert "no known statement format" in unknown["detail"]
    bad = await _post(gw, b"hello", finance, "?format=x&x=1", status=400)
    assert "unknown query parameter 'x'" in bad["detail"]


async def test_a_business_unit_key_may_not_import_statements(intake_gateway: LiveGateway, partner_files: Path) -> None:
    body = (partner_files / "nacha/return-WEB.ach").read_bytes()
    problem = await _post(intake_gateway, body, intake_gateway.key, status=403)
    assert problem["status"] == 403


async def test_a_camt053_beyond_the_xml_message_limit_streams_in_and_the_configured_limit_is_a_413(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "camt053.xml"
    size = write_camt053(6_000, path)  # ~3.4 MB: more than parse_xml's 2 MiB, less than the limit set here
    gw = await start_gateway(
        database,
        simulators=False,
        dispatch=False,
        poll=False,
        partners={},
        reconciliation__statement_max_bytes=size + 1024,
    )
    try:
        finance = await gw.new_key("treasury", ("finance",))
        done = await _post(gw, path.read_bytes(), finance)
        assert (done["format"], done["stored"], done["lines"]) == ("camt.053", 1, 6_000)
        too_big = await _post(gw, path.read_bytes() + b" " * 2048, finance, status=413)
        assert too_big["status"] == 413
    finally:
        await stop_gateway(gw)

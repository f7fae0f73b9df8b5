"""Rebate programs as data: tier arithmetic, periods, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.domain.rebates import ProgramError, parse_period, parse_programs, period_of
from gateway.errors import ConfigError
from gateway.store.rebates import load_programs, payout_reference

REPO = Path(__file__).resolve().parents[2]


def _doc(**program: Any) -> dict[str, Any]:
    base = {
        "id": "p",
        "distributors": ["nord"],
        "period": "quarter",
        "basis": "invoiced",
        "tiers": [{"from": "0", "rate": "1%"}, {"from": "1000.00", "rate": "3%"}],
    }
    return {"version": 1, "programs": [{**base, **program}]}


def test_the_shipped_example_file_loads() -> None:
    programs = load_programs(REPO / "config" / "rebates.yaml")
    assert set(programs) == {"gold-quarterly", "silver-monthly"}
    assert programs["gold-quarterly"].distributors == ("dist-alpha", "dist-beta")  # its tier group


def test_retroactive_tiers_rate_the_whole_period_marginal_only_the_band() -> None:
    retro = parse_programs(_doc())["p"]
    marginal = parse_programs(_doc(tier_mode="marginal"))["p"]
    assert retro.amount(99999, "EUR") == 1000  # 999.99 at 1%, rounded half up
    assert retro.amount(150000, "EUR") == 4500  # 1500.00 at 3%, all of it
    assert marginal.amount(150000, "EUR") == 1000 + 1500  # 1000.00 at 1% + 500.00 at 3%
    assert retro.amount(150000, "JPY") == 4500  # JPY has no minor units: 1000 JPY tier already crossed
    assert retro.amount(0, "EUR") == 0


def test_caps_bound_the_period_and_the_accrual() -> None:
    capped = parse_programs(_doc(caps={"EUR": "20.00"}))["p"]
    assert capped.amount(150000, "EUR") == 2000
    assert capped.amount(150000, "USD") == 4500  # the cap is per currency
    assert capped.accrual(100000, 150000, 1900, "EUR") == 100  # only what is left under the cap
    assert capped.accrual(100000, 150000, 2000, "EUR") == 0


def test_periods() -> None:
    kind, start, end = parse_period("2026-Q4")
    assert (kind, start.month, end.year, end.month) == ("quarter", 10, 2027, 1)
    assert parse_period("2026-02")[0] == "month"
    _, start, _ = parse_period("2026-11")
    assert (period_of("quarter", start), period_of("month", start)) == ("2026-Q4", "2026-11")
    for bad in ("2026-Q5", "2026-13", "26-Q1", "", "2026-q1", "0000-Q1", "9999-12"):
        with pytest.raises(ValueError, match="YYYY-Qn"):
            parse_period(bad)


def test_payout_references_are_deterministic_and_fit_35_characters() -> None:
    assert payout_reference("nord", "2026-Q4", "EUR") == "REB-nord-2026-Q4-EUR"
    long = payout_reference("a-very-long-distributor-name-indeed", "2026-Q4", "EUR")
    assert len(long) <= 35 and long == payout_reference("a-very-long-distributor-name-indeed", "2026-Q4", "EUR")
    assert long != payout_reference("a-very-long-distributor-name-other", "2026-Q4", "EUR")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"version": 2}, "rebates: version: must be 1"),
        ({"version": 1, "plans": []}, "rebates: plans: unknown key"),
        (_doc(period="week"), "rebates: programs[0].period: must be one of month, quarter"),
        (_doc(basis="shipped"), "rebates: programs[0].basis: must be one of invoiced, collected"),
        (_doc(tier_mode="stepped"), "programs[0].tier_mode: must be one of retroactive, marginal"),
        (_doc(tiers=[]), "programs[0].tiers: must be a non-empty list"),
        (_doc(tiers=[{"from": "0", "rate": "1"}]), "programs[0].tiers[0].rate: must be a percentage"),
        (_doc(tiers=[{"from": 1.5, "rate": "1%"}]), "programs[0].tiers[0].from: must be an amount"),
        (
            _doc(tiers=[{"from": "10", "rate": "1%"}, {"from": "5", "rate": "2%"}]),
            "programs[0].tiers[1].from: tiers must start at increasing volumes",
        ),
        (_doc(tiers=[{"from": "0", "rate": "1%", "per_unit": "2"}]), "programs[0].tiers[0]: must be a mapping"),
        (_doc(caps={"EUX": "10"}), "programs[0].caps.EUX:"),
        (_doc(caps={"EUR": "ten"}), "programs[0].caps.EUR: must be an amount"),
        (_doc(group="gold"), "programs[0]: name either distributors"),
        ({"version": 1, "programs": [{**_doc()["programs"][0], "distributors": None, "group": "x"}]}, "programs[0]"),
        (_doc(distributors=["bad name"]), "programs[0].distributors[0]: 'bad name' is not a distributor name"),
        (_doc(settlement="cash"), "programs[0].settlement: must be one of credit_note, payout"),
        (_doc(settlement="payout"), "programs[0].payout: settlement: payout needs payout"),
        (
            _doc(settlement="payout", payout={"business_unit": "erp", "debtor": {}, "creditors": {}}),
            "programs[0].payout.creditors.nord: missing",
        ),
        (_doc(rate="1%"), "programs[0].rate: unknown key"),
        (
            {"version": 1, "programs": [_doc()["programs"][0], {**_doc()["programs"][0], "id": "q"}]},
            "programs[1]: distributor 'nord' is already in 'p' on invoiced volume",
        ),
        (
            {"version": 1, "programs": [_doc()["programs"][0], _doc()["programs"][0]]},
            "programs[1].id: 'p' is used twice",
        ),
        ({"version": 1, "groups": {"g": "nord"}}, "rebates: groups.g: must be a non-empty list"),
    ],
)
def test_program_errors_are_one_line_naming_the_key(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ProgramError) as caught:
        parse_programs(doc)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_file_is_a_config_error_naming_the_file_and_key(tmp_path: Path) -> None:
    file = tmp_path / "rebates.yaml"
    file.write_text(yaml.safe_dump(_doc(period="week")))
    with pytest.raises(ConfigError, match=r"rebates\.yaml: programs\[0\]\.period"):
        load_programs(file)
    file.write_text("programs: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_programs(file)
    assert load_programs(None) == {}

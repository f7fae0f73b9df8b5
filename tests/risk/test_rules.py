"""Risk rules one by one, the policy that turns findings into outcomes, and what the history learns.

Real rule classes on real ``History`` objects; candidates are built directly
(accounts as keyed fingerprints, names and remittance normalised, as
``Candidate.from_order`` would).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import holidays
import pytest

from gateway.errors import ConfigError
from gateway.risk.engine import Policy, RiskEngine
from gateway.risk.history import History, bucket_seconds
from gateway.risk.model import Candidate, Finding, Fingerprinter, Outcome
from gateway.risk.rules import (
    AccountChangeRule,
    AmountOutlierRule,
    BlocklistRule,
    BusinessHoursRule,
    DuplicateRule,
    NewBeneficiaryRule,
    RoundAmountRule,
    Rule,
    RuleContext,
    VelocityRule,
)
from tests.support import RISK_FP as FP
from tests.support import RISK_T0 as T0
from tests.support import candidate as cand
from tests.support import risk_key as key

CTX = RuleContext(FP, "UTC", Path("."))
BERLIN = RuleContext(FP, "Europe/Berlin", Path("."))


def history_for(*rules: Rule) -> History:
    """A history keeping what these rules read (as ``RiskEngine.new_history`` does)."""
    counters = {spec for rule in rules for spec in rule.counters()}
    return History(recent_seconds=max((r.recent_seconds() for r in rules), default=0) or 86_400, counters=counters)


def fired(rule: Rule, c: Candidate, history: History) -> Finding:
    finding = rule.evaluate(c, history)
    assert finding is not None, f"{rule.name} did not fire for {c}"
    assert finding.rule == rule.name
    assert 0.0 <= finding.score <= 1.0
    return finding


# -- velocity ---------------------------------------------------------------------


def velocity(*limits: dict[str, Any], **options: Any) -> VelocityRule:
    return VelocityRule({"limits": list(limits), **options}, CTX)


def test_velocity_count_limit_fires_on_the_payment_over_the_limit() -> None:
    rule = velocity({"subject": "creditor", "window": "1h", "max_count": 3})
    history = history_for(rule)
    for i in range(3):
        c = cand(at=T0 + timedelta(minutes=i))
        assert rule.evaluate(c, history) is None  # 1st, 2nd, 3rd: within the limit
        history.record(c, learn=True)
    finding = fired(rule, cand(at=T0 + timedelta(minutes=5)), history)
    assert finding.reason == "4 payments by this creditor within 3600s (limit 3)"
    assert finding.score == pytest.approx(0.9)  # the rule's default score


def test_velocity_count_is_per_creditor_account() -> None:
    rule = velocity({"subject": "creditor", "window": "1h", "max_count": 2})
    history = history_for(rule)
    for i in range(2):
        history.record(cand(at=T0 + timedelta(minutes=i), creditor="supplier-a"), learn=True)
    assert rule.evaluate(cand(at=T0 + timedelta(minutes=3), creditor="supplier-b"), history) is None
    assert rule.evaluate(cand(at=T0 + timedelta(minutes=3), creditor="supplier-a"), history) is not None


def test_velocity_debtor_subject_counts_payments_to_any_creditor() -> None:
    rule = velocity({"subject": "debtor", "window": "10m", "max_count": 2})
    history = history_for(rule)
    history.record(cand(creditor="a", at=T0), learn=True)
    history.record(cand(creditor="b", at=T0 + timedelta(minutes=1)), learn=True)
    finding = fired(rule, cand(creditor="c", at=T0 + timedelta(minutes=2)), history)
    assert finding.reason == "3 payments by this debtor within 600s (limit 2)"
    # another debtor paying the same creditors is not counted
    assert rule.evaluate(cand(debtor="other-debtor", creditor="c", at=T0 + timedelta(minutes=2)), history) is None


def test_velocity_counts_per_currency() -> None:
    rule = velocity({"subject": "creditor", "window": "1h", "max_count": 1})
    history = history_for(rule)
    history.record(cand(currency="EUR"), learn=True)
    assert rule.evaluate(cand(currency="USD", at=T0 + timedelta(minutes=1)), history) is None
    assert rule.evaluate(cand(currency="EUR", at=T0 + timedelta(minutes=1)), history) is not None


def test_velocity_sum_limit_includes_the_candidate() -> None:
    rule = velocity({"subject": "creditor", "window": "24h", "max_sum": "1000"})
    history = history_for(rule)
    history.record(cand("600.00"), learn=True)
    # 600 + 400 = 1000 is not over the limit
    assert rule.evaluate(cand("400.00", at=T0 + timedelta(hours=1)), history) is None
    finding = fired(rule, cand("400.01", at=T0 + timedelta(hours=1)), history)
    assert finding.reason == "1,000.01 EUR by this creditor within 86400s (limit 1,000 EUR)"


def test_velocity_sum_limit_per_currency_and_minor_units() -> None:
    rule = velocity({"subject": "debtor", "window": "1h", "max_sum": {"JPY": "100000", "default": "500"}})
    history = history_for(rule)
    history.record(cand("90000", currency="JPY"), learn=True)
    history.record(cand("400.00", currency="USD"), learn=True)
    later = T0 + timedelta(minutes=5)
    # JPY has no decimals: 90000 + 9999 = 99999 JPY, under 100000
    assert rule.evaluate(cand("9999", currency="JPY", at=later), history) is None
    finding = fired(rule, cand("10001", currency="JPY", at=later), history)
    assert "100,001 JPY by this debtor" in finding.reason
    assert "(limit 100,000 JPY)" in finding.reason
    # USD falls under "default": 400 + 100.01 > 500
    finding = fired(rule, cand("100.01", currency="USD", at=later), history)
    assert finding.reason.startswith("500.01 USD by this debtor")


def test_velocity_window_slides_payments_expire() -> None:
    window = 3600
    size = bucket_seconds(window)
    rule = velocity({"subject": "creditor", "window": window, "max_count": 1})
    history = history_for(rule)
    history.record(cand(at=T0), learn=True)
    # still inside the window a second before it ends
    assert rule.evaluate(cand(at=T0 + timedelta(seconds=window - 1)), history) is not None
    # a whole bucket after the window ended, the old payment no longer counts
    assert rule.evaluate(cand(at=T0 + timedelta(seconds=window + size)), history) is None
    assert rule.evaluate(cand(at=T0 + timedelta(hours=5)), history) is None


def test_velocity_first_limit_that_is_exceeded_reports() -> None:
    rule = velocity(
        {"subject": "creditor", "window": "1h", "max_count": 100},
        {"subject": "creditor", "window": "1h", "max_sum": "250"},
    )
    history = history_for(rule)
    history.record(cand("200.00"), learn=True)
    finding = fired(rule, cand("100.00", at=T0 + timedelta(minutes=1)), history)
    assert "300.00 EUR" in finding.reason
    assert "limit 250 EUR" in finding.reason


# -- amount_outlier -----------------------------------------------------------------


def taught(amounts: list[str], **fields: Any) -> History:
    history = History()
    for i, amount in enumerate(amounts):
        history.record(cand(amount, at=T0 + timedelta(days=i), **fields), learn=True)
    return history


USUAL = ["100.00", "104.00", "96.00", "101.00", "99.00", "103.00", "97.00", "100.00"]


def test_amount_outlier_fires_far_above_the_pairs_usual() -> None:
    rule = AmountOutlierRule({"min_history": 6, "threshold": 5.0}, CTX)
    history = taught(USUAL)
    finding = fired(rule, cand("5000.00", at=T0 + timedelta(days=30)), history)
    assert "robust deviations from this pair's usual 100.00 EUR" in finding.reason
    # 0.5 at the threshold, rising to 0.9 at twice it (and no further)
    assert finding.score == pytest.approx(0.9)
    just_over = fired(rule, cand("170.00", at=T0 + timedelta(days=30)), history)  # z ≈ 5.3
    assert 0.5 < just_over.score < 0.6


def test_amount_outlier_quiet_for_usual_amounts() -> None:
    rule = AmountOutlierRule({"min_history": 6, "threshold": 5.0}, CTX)
    history = taught(USUAL)
    assert rule.evaluate(cand("102.50", at=T0 + timedelta(days=30)), history) is None
    # direction "up" (default): a much smaller amount is not an outlier
    assert rule.evaluate(cand("1.00", at=T0 + timedelta(days=30)), history) is None


def test_amount_outlier_direction_both_fires_far_below() -> None:
    rule = AmountOutlierRule({"min_history": 6, "threshold": 5.0, "direction": "both"}, CTX)
    history = taught(USUAL)
    finding = fired(rule, cand("1.00", at=T0 + timedelta(days=30)), history)
    assert "usual 100.00 EUR" in finding.reason


def test_amount_outlier_not_with_short_history() -> None:
    rule = AmountOutlierRule({"min_history": 6, "threshold": 5.0}, CTX)
    history = taught(USUAL[:5])  # only five payments: one short
    assert rule.evaluate(cand("5000.00", at=T0 + timedelta(days=30)), history) is None
    history.record(cand("100.00", at=T0 + timedelta(days=20)), learn=True)
    assert rule.evaluate(cand("5000.00", at=T0 + timedelta(days=30)), history) is not None


def test_amount_outlier_is_per_pair() -> None:
    rule = AmountOutlierRule({"min_history": 6, "threshold": 5.0}, CTX)
    history = taught(USUAL, creditor="usual-supplier")
    assert rule.evaluate(cand("5000.00", creditor="other-supplier"), history) is None
    assert rule.evaluate(cand("5000.00", creditor="usual-supplier", currency="USD"), history) is None


def test_amount_outlier_min_spread_for_constant_amounts() -> None:
    rule = AmountOutlierRule({"min_history": 6, "threshold": 6.0, "min_spread": 0.1}, CTX)
    history = taught(["100.00"] * 10)  # a subscription: always exactly the same amount, MAD = 0
    later = T0 + timedelta(days=30)
    # 5 % more is ln(1.05)/0.1 ≈ 0.5 deviations: not unusual although the spread is zero
    assert rule.evaluate(cand("105.00", at=later), history) is None
    assert rule.evaluate(cand("100.01", at=later), history) is None
    # ln(1.8)/0.1 ≈ 5.9 < 6; ln(2)/0.1 ≈ 6.9 >= 6
    assert rule.evaluate(cand("180.00", at=later), history) is None
    finding = fired(rule, cand("200.00", at=later), history)
    assert finding.reason.startswith("amount is 6.9 robust deviations")


def test_amount_outlier_min_amount_floor() -> None:
    rule = AmountOutlierRule({"min_history": 6, "threshold": 5.0, "min_amount": "1000"}, CTX)
    history = taught(["10.00", "10.50", "9.50", "10.00", "10.20", "9.80"])
    assert rule.evaluate(cand("900.00", at=T0 + timedelta(days=30)), history) is None  # unusual, but small
    assert rule.evaluate(cand("1000.00", at=T0 + timedelta(days=30)), history) is not None


# -- new_beneficiary ------------------------------------------------------------


def test_new_beneficiary_fires_for_a_large_first_payment() -> None:
    rule = NewBeneficiaryRule({"large_amount": "10000"}, CTX)
    finding = fired(rule, cand("25000.00"), History())
    assert finding.reason == "first payment to this account, 25,000.00 EUR (threshold 10,000)"
    assert finding.score == pytest.approx(0.8)


def test_new_beneficiary_quiet_for_known_account_or_small_amount() -> None:
    rule = NewBeneficiaryRule({"large_amount": "10000"}, CTX)
    history = History()
    assert rule.evaluate(cand("9999.99"), history) is None
    history.record(cand("50.00", creditor="known"), learn=True)
    assert rule.evaluate(cand("25000.00", creditor="known", at=T0 + timedelta(days=1)), history) is None
    # known in one business unit is not known in another
    assert rule.evaluate(cand("25000.00", creditor="known", business_unit="payroll"), history) is not None


def test_new_beneficiary_per_currency_thresholds() -> None:
    rule = NewBeneficiaryRule({"large_amount": {"default": "25000", "JPY": "3000000"}}, CTX)
    history = History()
    # 100,000 JPY is large in EUR terms of the default, but JPY has its own threshold
    assert rule.evaluate(cand("100000", currency="JPY"), history) is None
    finding = fired(rule, cand("3000000", currency="JPY"), history)
    assert finding.reason == "first payment to this account, 3,000,000 JPY (threshold 3,000,000)"
    assert rule.evaluate(cand("24999.99", currency="USD"), history) is None
    assert rule.evaluate(cand("25000.00", currency="USD"), history) is not None


def test_new_beneficiary_currency_without_threshold_never_fires() -> None:
    rule = NewBeneficiaryRule({"large_amount": {"EUR": "1000"}}, CTX)
    assert rule.evaluate(cand("1000000.00", currency="USD"), History()) is None
    assert rule.evaluate(cand("1000.00", currency="EUR"), History()) is not None


# -- duplicate ------------------------------------------------------------------


def duplicate_rule(**options: Any) -> DuplicateRule:
    return DuplicateRule({"window": "24h", "near_tolerance": 0.01, "near_similarity": 0.8, **options}, CTX)


def test_duplicate_exact_same_amount_and_remittance() -> None:
    rule = duplicate_rule()
    history = history_for(rule)
    first = cand("1234.56", remittance="Invoice 2026-0042", instruction_id="first-1")
    history.record(first, learn=True)
    finding = fired(rule, cand("1234.56", remittance="INVOICE 2026/0042", at=T0 + timedelta(hours=3)), history)
    assert finding.reason == "same creditor account, amount and remittance as first-1"
    assert finding.score == pytest.approx(0.9)


def test_duplicate_near_amount_and_similar_remittance() -> None:
    rule = duplicate_rule()
    history = history_for(rule)
    history.record(cand("1000.00", remittance="Invoice 2026-0042", instruction_id="first-2"), learn=True)
    c = cand("1005.00", remittance="Invoice 2026-0042 rev", at=T0 + timedelta(hours=1))
    finding = fired(rule, c, history)
    assert finding.reason == "nearly the same payment to this account as first-2"
    assert finding.score == pytest.approx(0.6)  # near_score


def test_duplicate_quiet_for_a_different_payment() -> None:
    rule = duplicate_rule()
    history = history_for(rule)
    history.record(cand("1000.00", remittance="Invoice 2026-0042"), learn=True)
    later = T0 + timedelta(hours=1)
    assert rule.evaluate(cand("1100.00", remittance="Invoice 2026-0042", at=later), history) is None  # 10 % off
    assert rule.evaluate(cand("1000.00", remittance="Rent March warehouse", at=later), history) is None
    assert rule.evaluate(cand("1000.00", remittance="Invoice 2026-0042", creditor="other", at=later), history) is None


def test_near_duplicate_must_name_the_same_documents() -> None:
    rule = duplicate_rule()
    history = history_for(rule)
    history.record(cand("1000.00", remittance="INV0000451 PO 4512345", instruction_id="run-1"), learn=True)
    later = T0 + timedelta(minutes=2)
    # the next invoice of a payment run: alike in text and amount, but another document
    assert rule.evaluate(cand("1004.00", remittance="INV0000452 PO 4578912", at=later), history) is None
    # the same invoice typed again (leading zeros dropped) is still a near duplicate
    finding = fired(rule, cand("1004.00", remittance="Inv. 451 PO 4512345", at=later), history)
    assert finding.reason == "nearly the same payment to this account as run-1"
    # a remittance naming no number cannot tell documents apart: similarity and amount decide
    history.record(cand("2000.00", remittance="Monthly service fee", instruction_id="fee-1"), learn=True)
    assert fired(rule, cand("2010.00", remittance="Monthly service fees", at=later), history).score == 0.6


def test_near_duplicate_numbers_check_can_be_turned_off() -> None:
    rule = duplicate_rule(near_same_numbers=False)
    history = history_for(rule)
    history.record(cand("1000.00", remittance="INV0000451 PO 4512345", instruction_id="run-1"), learn=True)
    c = cand("1004.00", remittance="INV0000452 PO 4578912", at=T0 + timedelta(minutes=2))
    assert fired(rule, c, history).reason == "nearly the same payment to this account as run-1"


def test_duplicate_outside_the_window() -> None:
    rule = duplicate_rule(window="2h")
    history = history_for(rule)
    history.record(cand("1000.00"), learn=True)
    assert rule.evaluate(cand("1000.00", at=T0 + timedelta(minutes=119)), history) is not None
    assert rule.evaluate(cand("1000.00", at=T0 + timedelta(minutes=121)), history) is None


def test_duplicate_different_currency_is_not_a_duplicate() -> None:
    rule = duplicate_rule()
    history = history_for(rule)
    history.record(cand("1000.00", currency="USD"), learn=True)
    assert rule.evaluate(cand("1000.00", currency="EUR", at=T0 + timedelta(minutes=5)), history) is None
    assert rule.evaluate(cand("1000.00", currency="USD", at=T0 + timedelta(minutes=5)), history) is not None


def test_duplicate_ignores_the_same_instruction() -> None:
    rule = duplicate_rule()
    history = history_for(rule)
    history.record(cand("1000.00", instruction_id="same-id"), learn=True)
    assert rule.evaluate(cand("1000.00", instruction_id="same-id", at=T0 + timedelta(minutes=1)), history) is None


# -- round_amount -----------------------------------------------------------------


def test_round_amount_fires_for_large_multiples() -> None:
    rule = RoundAmountRule({"min_amount": "10000", "multiple": "1000"}, CTX)
    finding = fired(rule, cand("50000.00"), History())
    assert finding.reason == "round amount 50,000.00 EUR (a multiple of 1,000)"
    assert fired(rule, cand("10000.00"), History()).rule == "round_amount"


def test_round_amount_quiet_for_small_or_uneven_amounts() -> None:
    rule = RoundAmountRule({"min_amount": "10000", "multiple": "1000"}, CTX)
    assert rule.evaluate(cand("9000.00"), History()) is None  # round, but below min_amount
    assert rule.evaluate(cand("50000.01"), History()) is None
    assert rule.evaluate(cand("50500.00"), History()) is None


def test_round_amount_per_currency() -> None:
    rule = RoundAmountRule({"min_amount": {"JPY": "1000000", "EUR": "10000"}, "multiple": {"default": "1000"}}, CTX)
    assert rule.evaluate(cand("100000", currency="JPY"), History()) is None
    assert rule.evaluate(cand("2000000", currency="JPY"), History()) is not None
    assert rule.evaluate(cand("1000000.00", currency="USD"), History()) is None  # no min_amount for USD


# -- business_hours -----------------------------------------------------------------


def hours_rule(context: RuleContext = BERLIN, **options: Any) -> BusinessHoursRule:
    base: dict[str, Any] = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "06:00", "end": "22:00"}
    return BusinessHoursRule({**base, **options}, context)


def at_utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_business_hours_quiet_on_a_weekday_during_hours() -> None:
    rule = hours_rule(holidays={"country": "DE"})
    assert rule.evaluate(cand(at=at_utc(2026, 3, 4, 10, 0)), History()) is None  # Wed 11:00 Berlin
    assert rule.evaluate(cand(at=at_utc(2026, 3, 6, 20, 59)), History()) is None  # Fri 21:59 Berlin


def test_business_hours_default_options() -> None:
    rule = BusinessHoursRule({}, BERLIN)  # mon-fri, 07:00-20:00
    assert fired(rule, cand(at=at_utc(2026, 3, 4, 5, 59)), History()).reason.startswith("received at 06:59")
    assert rule.evaluate(cand(at=at_utc(2026, 3, 4, 6, 0)), History()) is None  # 07:00 Berlin
    assert rule.evaluate(cand(at=at_utc(2026, 3, 4, 18, 59)), History()) is None  # 19:59 Berlin
    assert fired(rule, cand(at=at_utc(2026, 3, 4, 19, 0)), History()).reason.startswith("received at 20:00")


def test_business_hours_fires_on_a_weekend() -> None:
    rule = hours_rule()
    finding = fired(rule, cand(at=at_utc(2026, 3, 7, 12, 0)), History())  # Saturday
    assert finding.reason == "received on a sat (Europe/Berlin)"


def test_business_hours_weekend_starts_in_the_configured_time_zone() -> None:
    friday_late_utc = at_utc(2026, 3, 6, 23, 30)  # Friday in UTC, Saturday 00:30 in Berlin
    assert fired(hours_rule(), cand(at=friday_late_utc), History()).reason == "received on a sat (Europe/Berlin)"
    tokyo = hours_rule(RuleContext(FP, "Asia/Tokyo", Path(".")), start="00:00", end="24:00")
    monday_early_utc = at_utc(2026, 3, 8, 20, 0)  # Sunday in UTC, Monday 05:00 in Tokyo
    assert tokyo.evaluate(cand(at=monday_early_utc), History()) is None


def test_business_hours_fires_at_night() -> None:
    rule = hours_rule()
    finding = fired(rule, cand(at=at_utc(2026, 3, 4, 21, 30)), History())  # 22:30 Berlin (CET)
    assert finding.reason == "received at 22:30 Europe/Berlin, outside business hours"
    assert fired(rule, cand(at=at_utc(2026, 3, 4, 4, 59)), History()).reason.startswith("received at 05:59")


def test_business_hours_respects_daylight_saving_time() -> None:
    rule = hours_rule()
    # the same 04:30 UTC on a Wednesday: 05:30 in winter (CET, before 06:00), 06:30 in summer (CEST)
    winter = fired(rule, cand(at=at_utc(2026, 1, 7, 4, 30)), History())
    assert winter.reason == "received at 05:30 Europe/Berlin, outside business hours"
    assert rule.evaluate(cand(at=at_utc(2026, 7, 1, 4, 30)), History()) is None
    # and at 20:30 UTC: 21:30 in winter (inside), 22:30 in summer (outside)
    assert rule.evaluate(cand(at=at_utc(2026, 1, 7, 20, 30)), History()) is None
    summer = fired(rule, cand(at=at_utc(2026, 7, 1, 20, 30)), History())
    assert summer.reason == "received at 22:30 Europe/Berlin, outside business hours"


def test_business_hours_public_holiday() -> None:
    rule = hours_rule(holidays={"country": "DE"})
    christmas = date(2026, 12, 25)  # a Friday
    name = holidays.country_holidays("DE", years=2026)[christmas]
    finding = fired(rule, cand(at=at_utc(2026, 12, 25, 10, 0)), History())
    assert finding.reason == f"received on 2026-12-25, a public holiday ({name})"
    # the evening before in UTC is already Christmas Day in Berlin
    assert "public holiday" in fired(rule, cand(at=at_utc(2026, 12, 24, 23, 30)), History()).reason
    # without a holiday calendar the same Friday morning is an ordinary business day
    assert hours_rule().evaluate(cand(at=at_utc(2026, 12, 25, 10, 0)), History()) is None


def test_business_hours_public_holiday_is_per_country() -> None:
    # 3 October (German Unity Day) 2025 was a Friday; not a holiday in France
    at = at_utc(2025, 10, 3, 10, 0)
    assert fired(hours_rule(holidays={"country": "DE"}), cand(at=at), History()).reason.startswith(
        "received on 2025-10-03, a public holiday"
    )
    assert hours_rule(holidays={"country": "FR"}).evaluate(cand(at=at), History()) is None


def test_business_hours_configured_extra_dates() -> None:
    rule = hours_rule(holidays={"country": "DE", "dates": ["2026-06-15"]})  # a Monday, company closed
    finding = fired(rule, cand(at=at_utc(2026, 6, 15, 9, 0)), History())
    assert finding.reason == "received on 2026-06-15, a configured holiday"
    # 22:30 UTC on the 14th is already the 15th in Berlin (CEST)
    assert fired(rule, cand(at=at_utc(2026, 6, 14, 22, 30)), History()).reason.endswith("a configured holiday")
    assert rule.evaluate(cand(at=at_utc(2026, 6, 16, 9, 0)), History()) is None


def test_business_hours_unknown_holiday_country_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="XX"):
        hours_rule(holidays={"country": "XX"})


# -- account_change -----------------------------------------------------------------


def test_account_change_fires_when_a_known_name_has_a_new_account() -> None:
    rule = AccountChangeRule({"min_history": 2}, CTX)
    history = History()
    for i in range(3):
        history.record(cand(creditor="old-account", at=T0 + timedelta(days=i)), learn=True)
    finding = fired(
        rule, cand(creditor="new-account", creditor_name="ACME SUPPLIES", at=T0 + timedelta(days=5)), history
    )
    assert finding.reason == "creditor paid 3 times to another account; this account is new for the name"
    assert finding.score == pytest.approx(0.9)


def test_account_change_quiet_for_the_usual_account_or_another_name() -> None:
    rule = AccountChangeRule({"min_history": 2}, CTX)
    history = History()
    for i in range(3):
        history.record(cand(creditor="old-account", at=T0 + timedelta(days=i)), learn=True)
    later = T0 + timedelta(days=5)
    assert rule.evaluate(cand(creditor="old-account", at=later), history) is None
    assert rule.evaluate(cand(creditor="new-account", creditor_name="Globex Ltd", at=later), history) is None


def test_account_change_needs_min_history() -> None:
    rule = AccountChangeRule({"min_history": 2}, CTX)
    history = History()
    history.record(cand(creditor="old-account"), learn=True)
    assert rule.evaluate(cand(creditor="new-account", at=T0 + timedelta(days=1)), history) is None
    history.record(cand(creditor="old-account", at=T0 + timedelta(days=1)), learn=True)
    assert rule.evaluate(cand(creditor="new-account", at=T0 + timedelta(days=2)), history) is not None


def test_account_change_remembers_every_account_the_name_was_paid_to() -> None:
    rule = AccountChangeRule({"min_history": 1}, CTX)
    history = History()
    history.record(cand(creditor="old-account"), learn=True)
    changed = cand(creditor="new-account", at=T0 + timedelta(days=1))
    assert rule.evaluate(changed, history) is not None
    history.record(changed, learn=True)  # went through (e.g. approved)
    # both accounts are now known for the name: switching between them is not a change
    assert rule.evaluate(cand(creditor="new-account", at=T0 + timedelta(days=2)), history) is None
    assert rule.evaluate(cand(creditor="old-account", at=T0 + timedelta(days=2)), history) is None
    third = rule.evaluate(cand(creditor="third-account", at=T0 + timedelta(days=3)), history)
    assert third is not None and "2 other accounts" in third.reason


def test_account_change_ignores_names_shared_by_many_payees() -> None:
    rule = AccountChangeRule({"min_history": 1, "max_accounts": 3}, CTX)
    history = History()
    for i, account in enumerate(["customer-a", "customer-b", "customer-c"]):
        history.record(cand(creditor=account, at=T0 + timedelta(days=i)), learn=True)
    assert rule.evaluate(cand(creditor="customer-d", at=T0 + timedelta(days=5)), history) is None
    two_known = AccountChangeRule({"min_history": 1, "max_accounts": 4}, CTX)
    assert two_known.evaluate(cand(creditor="customer-d", at=T0 + timedelta(days=5)), history) is not None


# -- blocklist ------------------------------------------------------------------


def blocklist(tmp_path: Path, text: str) -> BlocklistRule:
    (tmp_path / "blocked.yaml").write_text(text, encoding="utf-8")
    return BlocklistRule({"file": "blocked.yaml"}, RuleContext(FP, "UTC", tmp_path))


BLOCKED = """
names:
  - Société Générale Fraude SA
  - Example Blocked Trading Ltd
  - Mallory
accounts:
  - {iban: "de89 3704 0044 0532 0130 00"}
  - {number: "123456789", routing: "021000021"}
  - {wallet: blocked-wallet-0001}
"""


@pytest.mark.parametrize(
    "name",
    [
        "SOCIETE GENERALE FRAUDE",
        "Société Générale Fraude SARL",
        "Societe-Generale Fraude, SAS",
        "The Example Blocked Trading Limited",
        "mallory",
        "MALLORY GmbH",
    ],
)
def test_blocklist_name_matches_without_case_accents_or_legal_form(tmp_path: Path, name: str) -> None:
    rule = blocklist(tmp_path, BLOCKED)
    finding = fired(rule, cand(creditor_name=name), History())
    assert finding.reason == "creditor name is on the blocked list"
    assert finding.score == pytest.approx(1.0)


def test_blocklist_name_contained_in_a_longer_name(tmp_path: Path) -> None:
    rule = blocklist(tmp_path, BLOCKED)
    finding = fired(rule, cand(creditor_name="Example Blocked Trading International Holdings"), History())
    assert finding.reason == "creditor name contains a blocked name"
    finding = fired(rule, cand(creditor_name="Trading Example Blocked"), History())  # any order
    assert finding.reason == "creditor name contains a blocked name"


def test_blocklist_quiet_for_other_names(tmp_path: Path) -> None:
    rule = blocklist(tmp_path, BLOCKED)
    assert rule.evaluate(cand(creditor_name="Example Trading Ltd"), History()) is None  # not every token
    # one-word blocked names match exactly only (no token match inside longer names)
    assert rule.evaluate(cand(creditor_name="Mallory Hardware Store"), History()) is None
    assert rule.evaluate(cand(creditor_name="Acme Supplies GmbH"), History()) is None


@pytest.mark.parametrize(
    "account",
    [
        {"iban": "DE89370400440532013000"},
        {"number": "123456789", "routing": "021000021"},
        {"wallet": "blocked-wallet-0001"},
    ],
)
def test_blocklist_account_matches_by_fingerprint(tmp_path: Path, account: dict[str, str]) -> None:
    rule = blocklist(tmp_path, BLOCKED)
    finding = fired(rule, cand(creditor_account=account, creditor_name="Harmless Name Ltd"), History())
    assert finding.reason == "creditor account is on the blocked list"
    assert FP.account(account) in rule.accounts
    assert "DE89370400440532013000" not in str(rule.accounts)  # only fingerprints are kept


def test_blocklist_account_quiet_for_other_accounts(tmp_path: Path) -> None:
    rule = blocklist(tmp_path, BLOCKED)
    other = {"iban": "GB82WEST12345698765432"}
    assert rule.evaluate(cand(creditor_account=other, creditor_name="Harmless Name Ltd"), History()) is None
    # a fingerprint made with another key does not match
    other_key = RuleContext(Fingerprinter(b"x" * 32), "UTC", tmp_path)
    assert BlocklistRule({"file": "blocked.yaml"}, other_key).accounts.isdisjoint(rule.accounts)


def test_blocklist_without_file_blocks_nothing() -> None:
    rule = BlocklistRule({}, CTX)
    assert rule.evaluate(cand(creditor_name="Mallory"), History()) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("names: [unclosed\n", "not valid YAML"),
        ("- Mallory\n", "expected a mapping with 'names' and/or 'accounts'"),
        ("names: [Mallory]\nibans: []\n", "expected a mapping with 'names' and/or 'accounts'"),
        ("names: [Mallory, 'GmbH']\n", r"names\[1\] is empty after normalisation"),
        ("accounts:\n  - {iban: DE00123}\n", r"accounts\[0\]: invalid IBAN"),
        ("accounts:\n  - DE89370400440532013000\n", r"accounts\[0\]: an account is a mapping"),
        ("accounts:\n  - {bic: DEUTDEFF}\n", r"accounts\[0\]: an account needs iban, number\+routing or wallet"),
        ("accounts:\n  - {number: '123', routing: '123456789'}\n", r"accounts\[0\]: routing number fails"),
    ],
)
def test_blocklist_bad_file_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        blocklist(tmp_path, text)
    assert "blocked.yaml" in str(caught.value)


def test_blocklist_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"blocked list .*nowhere\.yaml"):
        BlocklistRule({"file": "nowhere.yaml"}, RuleContext(FP, "UTC", tmp_path))


def test_blocklist_names_must_be_a_list(tmp_path: Path) -> None:
    # "names: Mallory" (a string, not a list) must not be read letter by letter
    # (which would block creditors named "m", "a", "l", ... and not Mallory).
    with pytest.raises(ConfigError, match="names"):
        blocklist(tmp_path, "names: Mallory\n")


# -- policy: findings to outcomes -------------------------------------------------------


class Fixed(Rule):
    """A test rule that always fires with its configured score."""

    name = "fixed"

    def evaluate(self, c: Candidate, history: History) -> Finding | None:
        return self.hit(f"always ({self.score})")


def fixed(score: float, action: str | None = None, name: str = "fixed") -> Rule:
    cls = type(f"Fixed_{name}", (Fixed,), {"name": name})
    return cls({"score": score, **({"action": action} if action else {})}, CTX)


def screen_with(*rules: Rule, **thresholds: float | None) -> tuple[Outcome, list[str]]:
    engine = RiskEngine(Policy(tuple(rules), **thresholds), fingerprints=FP)
    screening = engine.evaluate(cand(), History())
    return screening.outcome, screening.rules()


@pytest.mark.parametrize(
    ("score", "outcome"),
    [
        (0.2, Outcome.PASS),
        (0.5, Outcome.FLAG),
        (0.79, Outcome.FLAG),
        (0.8, Outcome.HOLD),
        (0.94, Outcome.HOLD),
        (0.95, Outcome.REJECT),
        (1.0, Outcome.REJECT),
    ],
)
def test_policy_thresholds_map_scores_to_outcomes(score: float, outcome: Outcome) -> None:
    got, rules = screen_with(fixed(score), flag_at=0.5, hold_at=0.8, reject_at=0.95)
    assert got is outcome
    assert rules == ([] if outcome is Outcome.PASS else ["fixed"])  # findings that pass are not reported


def test_policy_without_reject_threshold_never_rejects_by_score() -> None:
    assert screen_with(fixed(1.0), flag_at=0.5, hold_at=0.8, reject_at=None)[0] is Outcome.HOLD
    assert screen_with(fixed(1.0), flag_at=0.5, hold_at=None, reject_at=None)[0] is Outcome.FLAG
    assert screen_with(fixed(1.0), flag_at=None, hold_at=None, reject_at=None)[0] is Outcome.PASS


def test_policy_fixed_action_overrides_the_score() -> None:
    assert screen_with(fixed(0.99, "flag"), hold_at=0.8)[0] is Outcome.FLAG  # high score, only flagged
    assert screen_with(fixed(0.01, "reject"), flag_at=0.5)[0] is Outcome.REJECT  # low score, still rejected
    assert screen_with(fixed(0.1, "hold"))[0] is Outcome.HOLD


def test_policy_most_severe_outcome_wins_and_all_findings_are_kept() -> None:
    outcome, rules = screen_with(
        fixed(0.6, name="a"), fixed(0.9, name="b"), fixed(0.1, "flag", name="c"), fixed(0.1, name="d")
    )
    assert outcome is Outcome.HOLD
    assert rules == ["a", "b", "c"]
    outcome, _ = screen_with(fixed(0.9, name="a"), fixed(0.1, "reject", name="b"), fixed(0.6, name="c"))
    assert outcome is Outcome.REJECT


def test_screening_reason_lists_the_findings() -> None:
    engine = RiskEngine(Policy((fixed(0.6, name="a"), fixed(0.9, name="b"))), fingerprints=FP)
    screening = engine.evaluate(cand(), History())
    assert screening.reason == "a: always (0.6); b: always (0.9)"
    assert RiskEngine(Policy(()), fingerprints=FP).evaluate(cand(), History()).reason == "screening passed"


def test_policy_is_per_business_unit() -> None:
    engine = RiskEngine(Policy((fixed(0.9),)), policies={"payroll": Policy(())}, fingerprints=FP)
    assert engine.evaluate(cand(business_unit="ops"), History()).outcome is Outcome.HOLD
    assert engine.evaluate(cand(business_unit="payroll"), History()).outcome is Outcome.PASS


# -- what the history learns ------------------------------------------------------------


def test_held_payment_does_not_teach_but_counts() -> None:
    velocity_rule = velocity({"subject": "creditor", "window": "1h", "max_count": 2})
    dup = duplicate_rule()
    history = history_for(velocity_rule, dup)
    held = cand("30000.00", creditor="new-account", remittance="Invoice 9", instruction_id="held-1")
    history.record(held, learn=False)

    # not learned: pair, beneficiary and name are unknown
    assert history.pair(held) is None
    assert history.beneficiary(held) is None
    assert history.accounts_for_name(held) is None
    assert NewBeneficiaryRule({"large_amount": "10000"}, CTX).evaluate(held, history) is not None

    # but it counts towards velocity and duplicates (attempts matter)
    later = T0 + timedelta(minutes=10)
    assert history.velocity(cand(creditor="new-account", at=later), "creditor", 3600) == (1, 3_000_000)
    again = cand("30000.00", creditor="new-account", remittance="Invoice 9", at=later)
    assert fired(dup, again, history).reason.endswith("as held-1")
    history.record(again, learn=False)
    assert fired(velocity_rule, cand(creditor="new-account", at=later), history).reason.startswith("3 payments")


def test_approving_a_held_payment_teaches_it() -> None:
    history = History()
    held = cand("30000.00", creditor="new-account")
    history.record(held, learn=False)
    history.learn_only(held)  # finance approved
    assert history.beneficiary(held) is not None
    assert history.pair(held) is not None and history.pair(held).amounts == [3_000_000]
    assert history.accounts_for_name(held) is not None
    assert NewBeneficiaryRule({"large_amount": "10000"}, CTX).evaluate(held, history) is None


def test_held_payment_does_not_teach_an_account_change() -> None:
    rule = AccountChangeRule({"min_history": 2}, CTX)
    history = History()
    for i in range(2):
        history.record(cand(creditor="old-account", at=T0 + timedelta(days=i)), learn=True)
    changed = cand(creditor="fraudster-account", at=T0 + timedelta(days=3))
    assert rule.evaluate(changed, history) is not None
    history.record(changed, learn=False)  # held
    # the name still belongs to the old account: the next payment to the new one is caught again
    assert rule.evaluate(cand(creditor="fraudster-account", at=T0 + timedelta(days=4)), history) is not None
    known = history.accounts_for_name(changed)
    assert known is not None and known.accounts == {key("old-account"): 2}


def test_held_payment_does_not_teach_the_pairs_usual_amount() -> None:
    rule = AmountOutlierRule({"min_history": 6, "threshold": 5.0}, CTX)
    history = taught(USUAL)
    outlier = cand("5000.00", at=T0 + timedelta(days=30))
    for _ in range(10):
        history.record(outlier, learn=False)
    assert history.pair(outlier).amounts == [int(Decimal(a) * 100) for a in USUAL]
    assert rule.evaluate(outlier, history) is not None


def test_engine_screen_learns_only_what_goes_through() -> None:
    engine = RiskEngine(Policy((NewBeneficiaryRule({"large_amount": "10000"}, CTX), duplicate_rule())), fingerprints=FP)
    history = engine.new_history()
    first = engine.screen(cand("20000.00", creditor="new-account", remittance="Order 1"), history)
    assert first.outcome is Outcome.HOLD  # new_beneficiary's 0.8 reaches hold_at
    assert history.beneficiary(first.candidate) is None
    second = engine.screen(
        cand("20000.00", creditor="new-account", remittance="ORDER 1.", at=T0 + timedelta(hours=1)), history
    )
    assert second.outcome is Outcome.HOLD
    assert second.rules() == ["new_beneficiary", "duplicate"]  # still new, and the held attempt is remembered

    small = engine.screen(cand("50.00", creditor="another-account", remittance="Order 3"), history)
    assert small.outcome is Outcome.PASS
    assert history.beneficiary(small.candidate) is not None
    assert (
        engine.screen(
            cand("20000.00", creditor="another-account", remittance="Order 4", at=T0 + timedelta(hours=2)), history
        ).outcome
        is Outcome.PASS
    )


def test_flagged_payment_is_learned() -> None:
    engine = RiskEngine(Policy((RoundAmountRule({"action": "flag"}, CTX),)), fingerprints=FP)
    history = engine.new_history()
    screening = engine.screen(cand("20000.00", creditor="fresh-account"), history)
    assert screening.outcome is Outcome.FLAG
    assert history.beneficiary(screening.candidate) is not None

"""The risk file: the shipped one loads, per-unit overrides merge over defaults, errors name the key,
and third-party rules plug in through ``gateway_risk_rules`` like the built-ins."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gateway.domain.money import Money
from gateway.errors import ConfigError
from gateway.plugins.hookspecs import hookimpl
from gateway.plugins.manager import Plugins
from gateway.risk.engine import RiskEngine, load_risk
from gateway.risk.history import History
from gateway.risk.model import Candidate, Finding, Outcome, normalise_name, normalise_text
from gateway.risk.rules import (
    BUILTIN_RULES,
    BlocklistRule,
    BusinessHoursRule,
    NewBeneficiaryRule,
    Rule,
    VelocityRule,
)
from tests.support import REPO
from tests.support import RISK_FP as FP
from tests.support import candidate as cand

KEY = b"k" * 32
RULES = Plugins(load_entry_points=False).risk_rule_classes()
SHIPPED = REPO / "config" / "risk.yaml"
WEDNESDAY = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # 11:00 in Berlin
SATURDAY = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)


def write(tmp_path: Path, text: str, name: str = "risk.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, rule_classes: list[type[Rule]] | None = None) -> RiskEngine:
    return load_risk(write(tmp_path, text), RULES if rule_classes is None else rule_classes, KEY)


def rule_names(engine: RiskEngine, business_unit: str | None = None) -> list[str]:
    policy = engine.default if business_unit is None else engine.policies[business_unit]
    return [r.name for r in policy.rules]


def rule_of(engine: RiskEngine, name: str, business_unit: str | None = None) -> Rule:
    policy = engine.default if business_unit is None else engine.policies[business_unit]
    found = [r for r in policy.rules if r.name == name]
    assert len(found) == 1, f"{name} not in {[r.name for r in policy.rules]}"
    return found[0]


# -- the shipped file ---------------------------------------------------------------


def test_builtin_rules_come_through_the_plugin_hook() -> None:
    assert [cls.name for cls in RULES] == [cls.name for cls in BUILTIN_RULES]
    assert [cls.name for cls in RULES] == [
        "velocity",
        "amount_outlier",
        "new_beneficiary",
        "duplicate",
        "round_amount",
        "business_hours",
        "account_change",
        "blocklist",
    ]


def test_shipped_risk_file_loads() -> None:
    engine = load_risk(SHIPPED, RULES, KEY)
    assert engine.source == str(SHIPPED)
    assert rule_names(engine) == [cls.name for cls in BUILTIN_RULES]
    assert engine.default.timezone == "Europe/Berlin"
    assert engine.default.hold_expiry_seconds == 72 * 3600
    assert (engine.default.flag_at, engine.default.hold_at, engine.default.reject_at) == (0.5, 0.8, None)
    velocity = rule_of(engine, "velocity")
    assert isinstance(velocity, VelocityRule)
    assert [(s, w, n) for s, w, n, _ in velocity.limits] == [
        ("creditor", 3600, 5),
        ("creditor", 86400, None),
        ("debtor", 3600, 5000),
    ]
    assert rule_of(engine, "round_amount").action is Outcome.FLAG
    assert rule_of(engine, "business_hours").action is Outcome.FLAG
    blocklist = rule_of(engine, "blocklist")
    assert isinstance(blocklist, BlocklistRule)
    assert blocklist.action is Outcome.HOLD
    assert "example blocked trading" in blocklist.names  # config/blocklist.yaml, next to the risk file
    assert FP.account({"wallet": "blocked-example-wallet-0001"}) in blocklist.accounts
    new_beneficiary = rule_of(engine, "new_beneficiary")
    assert isinstance(new_beneficiary, NewBeneficiaryRule)
    assert new_beneficiary.large.get("JPY") == Decimal("3000000")
    assert new_beneficiary.large.get("EUR") == Decimal("25000")
    # counterparties and credit limits
    assert engine.counterparty_of("unknown-key", normalise_name("NORDIC PARTS")) == "nordic-parts"
    [limit] = engine.credit_limits
    assert (limit.counterparty, limit.currency, limit.limit, limit.on_exceed) == (
        "nordic-parts",
        "EUR",
        Money("500000.00", "EUR"),
        Outcome.HOLD,
    )
    # the history keeps what the rules read
    assert engine.bucket_sizes == {150, 3600}
    assert engine.recent_seconds == 86400


def test_shipped_payroll_unit_overrides_the_defaults() -> None:
    engine = load_risk(SHIPPED, RULES, KEY)
    assert set(engine.policies) == {"payroll", "us-orders"}
    assert "business_hours" not in rule_names(engine, "payroll")
    assert rule_names(engine, "payroll") == [n for n in rule_names(engine) if n != "business_hours"]
    velocity = rule_of(engine, "velocity", "payroll")
    assert isinstance(velocity, VelocityRule)
    assert [(s, w, n) for s, w, n, _ in velocity.limits] == [("creditor", 3600, 3)]  # lists are replaced
    # a Saturday payment: flagged for the default unit, fine for payroll (salary runs at night/weekends)
    history = engine.new_history()
    ops = engine.evaluate(cand(at=SATURDAY), history)
    assert ops.outcome is Outcome.FLAG
    assert ops.rules() == ["business_hours"]
    assert engine.evaluate(cand(at=SATURDAY, business_unit="payroll"), history).outcome is Outcome.PASS


def test_shipped_file_screens_a_blocked_creditor_to_hold() -> None:
    engine = load_risk(SHIPPED, RULES, KEY)
    screening = engine.evaluate(cand(creditor_name="EXAMPLE BLOCKED TRADING LIMITED"), engine.new_history())
    assert screening.outcome is Outcome.HOLD
    assert screening.reason == "blocklist: creditor name is on the blocked list"


def test_no_risk_file_means_no_rules() -> None:
    engine = load_risk(None, RULES, KEY)
    assert engine.default.rules == ()
    assert engine.evaluate(cand("999999.00", at=SATURDAY), History()).outcome is Outcome.PASS


# -- policy and per-unit overrides from YAML -------------------------------------------------

OVERRIDES = """
defaults:
  timezone: Europe/Berlin
  policy: {flag_at: 0.5, hold_at: 0.8, reject_at: 0.95}
  rules:
    new_beneficiary: {large_amount: {default: "10000", JPY: "1000000"}}
    round_amount: {min_amount: "10000", multiple: "1000", action: flag}
    business_hours: {days: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00"}
    blocklist: {file: blocked.yaml, score: 1.0}
    account_change: {enabled: false}
business_units:
  payroll:
    rules:
      business_hours: {enabled: false}
      new_beneficiary: {large_amount: {default: "50000"}}
  treasury:
    timezone: America/New_York
    policy: {reject_at: null}
    rules:
      round_amount: {action: hold}
      account_change: {enabled: true, min_history: 3}
"""


@pytest.fixture
def overrides(tmp_path: Path) -> RiskEngine:
    write(tmp_path, "names: [Mallory Trading]\n", "blocked.yaml")
    return load(tmp_path, OVERRIDES)


def test_enabled_false_leaves_the_rule_out(overrides: RiskEngine) -> None:
    assert "account_change" not in rule_names(overrides)
    assert "account_change" not in rule_names(overrides, "payroll")
    assert rule_names(overrides) == ["new_beneficiary", "round_amount", "business_hours", "blocklist"]


def test_unit_can_disable_a_rule_for_itself_only(overrides: RiskEngine) -> None:
    assert "business_hours" not in rule_names(overrides, "payroll")
    assert "business_hours" in rule_names(overrides)
    assert "business_hours" in rule_names(overrides, "treasury")
    history = History()
    assert overrides.evaluate(cand(at=SATURDAY), history).rules() == ["business_hours"]
    assert overrides.evaluate(cand(at=SATURDAY, business_unit="payroll"), history).outcome is Outcome.PASS
    # a unit without its own section uses the defaults
    assert overrides.evaluate(cand(at=SATURDAY, business_unit="marketing"), history).rules() == ["business_hours"]


def test_unit_can_enable_a_rule_disabled_by_default(overrides: RiskEngine) -> None:
    account_change = rule_of(overrides, "account_change", "treasury")
    assert account_change.options["min_history"] == 3


def test_unit_options_merge_over_the_default_options(overrides: RiskEngine) -> None:
    payroll = rule_of(overrides, "new_beneficiary", "payroll")
    assert isinstance(payroll, NewBeneficiaryRule)
    # default changed, JPY kept from the defaults (mappings merge key by key)
    assert payroll.large.get("EUR") == Decimal("50000")
    assert payroll.large.get("JPY") == Decimal("1000000")
    defaults = rule_of(overrides, "new_beneficiary")
    assert isinstance(defaults, NewBeneficiaryRule)
    assert defaults.large.get("EUR") == Decimal("10000")  # the defaults are not changed by the merge
    history = History()
    assert overrides.evaluate(cand("20000.01"), history).rules() == ["new_beneficiary"]
    assert overrides.evaluate(cand("20000.01", business_unit="payroll"), history).outcome is Outcome.PASS
    # treasury changes round_amount's action only: min_amount and multiple come from the defaults
    treasury = rule_of(overrides, "round_amount", "treasury")
    assert treasury.action is Outcome.HOLD
    assert treasury.options["min_amount"] == "10000" and treasury.options["multiple"] == "1000"


def test_fixed_action_from_the_file_overrides_thresholds(overrides: RiskEngine) -> None:
    history = History()
    # round_amount's score is 0.5 but its action is flag (defaults) / hold (treasury)
    on_monday = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # inside business hours in Berlin and New York
    for unit in ("ops", "treasury"):  # a known beneficiary in both units (new_beneficiary stays quiet)
        history.record(cand("1.00", creditor="known", business_unit=unit), learn=True)
    ops = overrides.evaluate(cand("20000.00", creditor="known", at=on_monday), history)
    assert (ops.outcome, ops.rules()) == (Outcome.FLAG, ["round_amount"])
    treasury = overrides.evaluate(cand("20000.00", creditor="known", at=on_monday, business_unit="treasury"), history)
    assert (treasury.outcome, treasury.rules()) == (Outcome.HOLD, ["round_amount"])


def test_thresholds_from_the_file_and_their_unit_overrides(overrides: RiskEngine, tmp_path: Path) -> None:
    assert (overrides.default.flag_at, overrides.default.hold_at, overrides.default.reject_at) == (0.5, 0.8, 0.95)
    treasury = overrides.policies["treasury"]
    assert (treasury.flag_at, treasury.hold_at, treasury.reject_at) == (0.5, 0.8, None)
    history = History()
    blocked = cand(creditor_name="Mallory Trading Ltd", at=datetime(2026, 3, 2, 15, 0, tzinfo=UTC))
    # blocklist score 1.0: reject by default, only hold where reject_at is null
    assert overrides.evaluate(blocked, history).outcome is Outcome.REJECT
    treasury_blocked = cand(creditor_name="Mallory Trading", business_unit="treasury", at=blocked.at)
    assert overrides.evaluate(treasury_blocked, history).outcome is Outcome.HOLD


def test_unit_time_zone_applies_to_its_rules(overrides: RiskEngine) -> None:
    assert overrides.policies["treasury"].timezone == "America/New_York"
    assert overrides.policies["payroll"].timezone == "Europe/Berlin"  # inherited
    assert rule_of(overrides, "business_hours", "treasury").context.timezone == "America/New_York"
    # 14:00 UTC on a Wednesday in March 2026: 15:00 in Berlin, 10:00 in New York (EDT since 8 March)
    at = datetime(2026, 3, 11, 14, 0, tzinfo=UTC)
    history = History()
    assert overrides.evaluate(cand(at=at), history).outcome is Outcome.PASS
    assert overrides.evaluate(cand(at=at, business_unit="treasury"), history).outcome is Outcome.PASS
    # 12:30 UTC: 13:30 in Berlin, 08:30 in New York (EDT) - but 07:30 a week earlier (EST)
    assert (
        overrides.evaluate(
            cand(at=datetime(2026, 3, 11, 12, 30, tzinfo=UTC), business_unit="treasury"), history
        ).outcome
        is Outcome.PASS
    )
    early = overrides.evaluate(cand(at=datetime(2026, 3, 4, 12, 30, tzinfo=UTC), business_unit="treasury"), history)
    assert early.outcome is Outcome.FLAG
    assert early.reason == "business_hours: received at 07:30 America/New_York, outside business hours"


def test_hold_expiry_and_score_from_the_file(tmp_path: Path) -> None:
    engine = load(
        tmp_path,
        """
defaults:
  hold_expiry: 90m
  rules:
    new_beneficiary: {large_amount: "100", score: 0.6}
business_units:
  ops: {hold_expiry: 3600}
""",
    )
    assert engine.default.hold_expiry_seconds == 5400
    assert engine.policies["ops"].hold_expiry_seconds == 3600
    screening = engine.evaluate(cand("500.00"), History())
    assert screening.outcome is Outcome.FLAG  # 0.6 is between flag_at 0.5 and hold_at 0.8 (the default thresholds)
    assert screening.findings[0].score == pytest.approx(0.6)


# -- errors name the key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param("defaults:\n  rules:\n    velocityy: {}\n", "defaults.rules: ", id="unknown-rule"),
        pytest.param(
            "business_units:\n  ops:\n    rules:\n      fast_payments: {enabled: false}\n",
            "business_units.ops.rules: ",
            id="unknown-rule-in-unit",
        ),
        pytest.param(
            "defaults:\n  rules:\n    velocity:\n      limits:\n"
            "        - {subject: creditor, window: soon, max_count: 3}\n",
            "defaults.rules.velocity.limits.0.window: ",
            id="bad-duration",
        ),
        pytest.param(
            "business_units:\n  ops:\n    rules:\n      velocity:\n        limits:\n"
            "          - {subject: creditor, window: 1h, max_count: ten}\n",
            "business_units.ops.rules.velocity.limits.0.max_count: ",
            id="bad-count-in-unit",
        ),
        pytest.param(
            "defaults:\n  rules:\n    velocity:\n      limits:\n"
            "        - {subject: beneficiary, window: 1h, max_count: 3}\n",
            "defaults.rules.velocity.limits.0.subject: ",
            id="bad-subject",
        ),
        pytest.param(
            "defaults:\n  rules:\n    velocity:\n      limits:\n"
            "        - {subject: debtor, window: 1h, max_sum: '12,000'}\n",
            "defaults.rules.velocity.limits.0.max_sum: ",
            id="bad-amount",
        ),
        pytest.param(
            "defaults:\n  rules:\n    new_beneficiary: {large_amount: {eur: '100'}}\n",
            "defaults.rules.new_beneficiary.large_amount: ",
            id="bad-currency-key",
        ),
        pytest.param(
            "defaults:\n  rules:\n    duplicate: {window: 24h, near_tolerance: 0.9}\n",
            "defaults.rules.duplicate.near_tolerance: ",
            id="option-out-of-range",
        ),
        pytest.param(
            "defaults:\n  rules:\n    duplicate: {score: 1.5}\n", "defaults.rules.duplicate.score: ", id="score"
        ),
        pytest.param(
            "defaults:\n  rules:\n    duplicate: {action: pass}\n", "defaults.rules.duplicate.action: ", id="action"
        ),
        pytest.param(
            "defaults:\n  rules:\n    round_amount: {enabled: 'no'}\n",
            "defaults.rules.round_amount.enabled: ",
            id="enabled-not-boolean",
        ),
        pytest.param(
            "defaults:\n  rules:\n    business_hours: {start: '7am'}\n",
            "defaults.rules.business_hours.start: ",
            id="bad-time",
        ),
        pytest.param("defaults:\n  policy: {hold_at: 2}\n", "defaults.policy.hold_at: ", id="threshold"),
        pytest.param("defaults:\n  hold_expiry: a week\n", "defaults.hold_expiry: ", id="hold-expiry"),
        pytest.param("defaults:\n  timezone: Mars/Olympus_Mons\n", "defaults.timezone: unknown time zone", id="tz"),
        pytest.param(
            "business_units:\n  emea:\n    timezone: Europe/Atlantis\n",
            "business_units.emea.timezone: unknown time zone 'Europe/Atlantis'",
            id="tz-in-unit",
        ),
        pytest.param(
            "credit_limits:\n  - {counterparty: acme, currency: EUR, limit: '1000.00'}\n",
            "credit_limits.0.counterparty: 'acme' is not under counterparties",
            id="unknown-counterparty",
        ),
        pytest.param(
            "counterparties:\n  acme: {names: [Acme]}\n"
            "credit_limits:\n  - {counterparty: acme, currency: EUR, limit: lots}\n",
            "credit_limits.0.limit: ",
            id="credit-limit-not-an-amount",
        ),
        pytest.param(
            "counterparties:\n  acme: {names: [Acme]}\n"
            "credit_limits:\n  - {counterparty: acme, currency: EUR, limit: '1000.00'}\n"
            "  - {counterparty: acme, currency: EUR, limit: '1000.001'}\n",
            "credit_limits.1: EUR allows 2 decimals",
            id="credit-limit-too-many-decimals",
        ),
        pytest.param(
            "counterparties:\n  acme: {names: [Acme]}\n"
            "credit_limits:\n  - {counterparty: acme, currency: ABC, limit: '1'}\n",
            "credit_limits.0: 'ABC' is not an ISO 4217 currency",
            id="credit-limit-currency",
        ),
        pytest.param(
            "counterparties:\n  acme: {names: [Acme]}\ncredit_limits:\n  - {counterparty: acme, currency: EUR}\n",
            "credit_limits.0: 'limit' is a required property",
            id="credit-limit-missing",
        ),
        pytest.param(
            "counterparties:\n  acme:\n    accounts:\n      - {iban: DE00000}\n",
            "counterparties.acme.accounts.0: invalid IBAN",
            id="counterparty-account",
        ),
        pytest.param(
            "defaults:\n  rules:\n    blocklist: {file: missing-blocklist.yaml}\n",
            "defaults.rules.blocklist: blocked list",
            id="blocklist-missing",
        ),
        pytest.param(
            "defaults:\n  rules:\n    business_hours: {holidays: {country: XX}}\n",
            "defaults.rules.business_hours: no public holiday calendar for country 'XX'",
            id="holiday-country",
        ),
        pytest.param("risk_rules: {}\n", "(top level): ", id="unknown-top-level-key"),
    ],
)
def test_config_error_names_the_key(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_risk(path, RULES, KEY)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert where in message, message


def test_config_error_message_as_documented(tmp_path: Path) -> None:
    text = (
        "defaults:\n  rules:\n    velocity:\n      limits:\n        - {subject: creditor, window: soon, max_count: 3}\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_risk(path, RULES, KEY)
    assert str(caught.value) == (
        f"{path}: defaults.rules.velocity.limits.0.window: 'soon' is not valid under any of the given schemas"
    )


def test_config_error_for_a_bad_blocklist_names_rule_and_file(tmp_path: Path) -> None:
    write(tmp_path, "names: [Mallory]\nibans: [DE89370400440532013000]\n", "blocked.yaml")
    with pytest.raises(ConfigError, match=r"defaults\.rules\.blocklist: blocked list .*blocked\.yaml") as caught:
        load(tmp_path, "defaults:\n  rules:\n    blocklist: {file: blocked.yaml}\n")
    assert "'names' and/or 'accounts'" in str(caught.value)


def test_config_error_for_a_bad_blocklist_in_one_unit_names_the_unit(tmp_path: Path) -> None:
    write(tmp_path, "names: [Mallory]\n", "good.yaml")
    write(tmp_path, "accounts:\n  - {wallet: x}\n", "bad.yaml")  # too short for a wallet id
    text = (
        "defaults:\n  rules:\n    blocklist: {file: good.yaml}\n"
        "business_units:\n  emea:\n    rules:\n      blocklist: {file: bad.yaml}\n"
    )
    with pytest.raises(ConfigError, match=r"business_units\.emea\.rules\.blocklist: .*accounts\[0\]: wallet id"):
        load(tmp_path, text)


def test_unknown_option_names_the_rule(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"defaults\.rules\.duplicate: .*'windw' was unexpected"):
        load(tmp_path, "defaults:\n  rules:\n    duplicate: {windw: 24h}\n")


def test_risk_file_that_is_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"risk\.yaml:\d+: not valid YAML"):
        load(tmp_path, "defaults:\n  rules: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read risk file"):
        load_risk(tmp_path / "absent.yaml", RULES, KEY)


def test_bad_holiday_date_is_a_config_error(tmp_path: Path) -> None:
    # the schema says "format: date", but formats are not checked: the date must still fail as a ConfigError
    with pytest.raises(ConfigError, match=r"defaults\.rules\.business_hours"):
        load(tmp_path, "defaults:\n  rules:\n    business_hours:\n      holidays: {dates: ['25.12.2026']}\n")


def test_bad_holiday_subdivision_names_the_subdivision(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"defaults\.rules\.business_hours") as caught:
        load(tmp_path, "defaults:\n  rules:\n    business_hours:\n      holidays: {country: DE, subdivision: ZZ}\n")
    # Germany has a calendar; it is the subdivision that is wrong
    assert "ZZ" in str(caught.value), str(caught.value)


def test_good_holiday_subdivision_loads(tmp_path: Path) -> None:
    engine = load(
        tmp_path, "defaults:\n  rules:\n    business_hours:\n      holidays: {country: DE, subdivision: BY}\n"
    )
    rule = rule_of(engine, "business_hours")
    assert isinstance(rule, BusinessHoursRule)
    # Epiphany (6 January 2026, a Tuesday) is a holiday in Bavaria
    finding = rule.evaluate(cand(at=datetime(2026, 1, 6, 10, 0, tzinfo=UTC)), History())
    assert finding is not None and "public holiday" in finding.reason


# -- third-party rules -------------------------------------------------------------------


class RemittanceKeywordRule(Rule):
    """A test plugin's rule: the remittance contains one of the configured words."""

    name = "remittance_keyword"
    default_score = 0.85
    options_schema: ClassVar[dict[str, Any]] = {
        "words": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    }

    def __init__(self, options: Mapping[str, Any], context: Any) -> None:
        super().__init__(options, context)
        self.words = [normalise_text(w) for w in options.get("words", [])]

    def evaluate(self, c: Candidate, history: History) -> Finding | None:
        for word in self.words:
            if f" {word} " in f" {c.remittance} ":
                return self.hit(f"remittance mentions {word!r}")
        return None


class KeywordPlugin:
    @hookimpl
    def gateway_risk_rules(self) -> list[type[Rule]]:
        return [RemittanceKeywordRule]


PLUGIN_RISK = """
defaults:
  rules:
    round_amount: {action: flag}
    remittance_keyword: {words: [Bitcoin, "gift card"]}
business_units:
  treasury:
    rules:
      remittance_keyword: {action: reject}
"""


def test_plugin_rule_is_registered_after_the_builtins() -> None:
    classes = Plugins(load_entry_points=False, extra=[KeywordPlugin()]).risk_rule_classes()
    assert [cls.name for cls in classes] == [cls.name for cls in BUILTIN_RULES] + ["remittance_keyword"]
    assert classes[-1] is RemittanceKeywordRule


def test_plugin_rule_is_usable_from_the_risk_file_and_fires(tmp_path: Path) -> None:
    classes = Plugins(load_entry_points=False, extra=[KeywordPlugin()]).risk_rule_classes()
    engine = load(tmp_path, PLUGIN_RISK, classes)
    assert rule_names(engine) == ["round_amount", "remittance_keyword"]
    history = History()
    screening = engine.evaluate(cand(remittance="BITCOIN purchase"), history)
    assert engine.evaluate(cand(remittance="Gift-Card codes"), history).rules() == ["remittance_keyword"]
    assert screening.outcome is Outcome.HOLD  # 0.85 >= hold_at 0.8
    assert screening.reason == "remittance_keyword: remittance mentions 'bitcoin'"
    assert engine.evaluate(cand(remittance="Invoice 4711"), history).outcome is Outcome.PASS
    # per-unit override of a plugin rule's common option
    assert engine.evaluate(cand(remittance="bitcoin", business_unit="treasury"), history).outcome is Outcome.REJECT
    # and it works through screen() as the built-ins do: held, so not learned
    held = engine.screen(cand(remittance="bitcoin", creditor="new"), history)
    assert held.outcome is Outcome.HOLD and history.beneficiary(held.candidate) is None


def test_plugin_rule_options_are_checked_by_its_schema(tmp_path: Path) -> None:
    classes = Plugins(load_entry_points=False, extra=[KeywordPlugin()]).risk_rule_classes()
    with pytest.raises(ConfigError, match=r"defaults\.rules\.remittance_keyword\.words: "):
        load(tmp_path, "defaults:\n  rules:\n    remittance_keyword: {words: bitcoin}\n", classes)
    with pytest.raises(ConfigError, match=r"defaults\.rules\.remittance_keyword\.score: "):
        load(tmp_path, "defaults:\n  rules:\n    remittance_keyword: {score: high}\n", classes)


def test_plugin_rule_unknown_without_the_plugin(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"defaults\.rules: .*'remittance_keyword' was unexpected"):
        load(tmp_path, "defaults:\n  rules:\n    remittance_keyword: {words: [bitcoin]}\n")
    with pytest.raises(ConfigError, match=r"(defaults|business_units\.treasury)\.rules: .*'remittance_keyword'"):
        load(tmp_path, PLUGIN_RISK)


def test_two_rules_with_the_same_name_are_a_config_error(tmp_path: Path) -> None:
    class AnotherVelocity(Rule):
        name = "velocity"

    class ShadowPlugin:
        @hookimpl
        def gateway_risk_rules(self) -> list[type[Rule]]:
            return [AnotherVelocity]

    with pytest.raises(ConfigError, match="two risk rules are named 'velocity'"):
        Plugins(load_entry_points=False, extra=[ShadowPlugin()]).risk_rule_classes()
    with pytest.raises(ConfigError, match="two risk rules are named 'velocity'"):
        load(tmp_path, "defaults: {}\n", [*RULES, AnotherVelocity])


def test_two_plugins_with_the_same_rule_name_are_a_config_error() -> None:
    class Copy(RemittanceKeywordRule):
        pass

    class CopyPlugin:
        @hookimpl
        def gateway_risk_rules(self) -> list[type[Rule]]:
            return [Copy]

    with pytest.raises(ConfigError, match="two risk rules are named 'remittance_keyword'"):
        Plugins(load_entry_points=False, extra=[KeywordPlugin(), CopyPlugin()]).risk_rule_classes()
    # the same class from two plugins is not a conflict
    twice = Plugins(load_entry_points=False, extra=[KeywordPlugin(), KeywordPlugin()]).risk_rule_classes()
    assert [cls.name for cls in twice].count("remittance_keyword") == 1


def test_plugin_returning_a_non_rule_is_a_config_error() -> None:
    class Unnamed(Rule):
        pass

    class BadPlugin:
        def __init__(self, returned: object) -> None:
            self.returned = returned

        @hookimpl
        def gateway_risk_rules(self) -> list[object]:
            return [self.returned]

    for returned in (dict, Unnamed, "velocity"):
        with pytest.raises(ConfigError, match="not a named risk Rule subclass"):
            Plugins(load_entry_points=False, extra=[BadPlugin(returned)]).risk_rule_classes()


def test_velocity_rule_buckets_follow_the_configured_windows(tmp_path: Path) -> None:
    engine = load(
        tmp_path,
        "defaults:\n  rules:\n    velocity:\n      limits:\n        - {subject: debtor, window: 2h, max_count: 2}\n"
        "    duplicate: {window: 3d}\n",
    )
    history = engine.new_history()
    assert history.bucket_sizes == [300]
    assert history.recent_seconds == 3 * 86400
    for minutes in (0, 30):
        screening = engine.screen(cand(at=WEDNESDAY + timedelta(minutes=minutes), creditor=f"c{minutes}"), history)
        assert screening.outcome is Outcome.PASS
    third = engine.evaluate(cand(at=WEDNESDAY + timedelta(minutes=90), creditor="c90"), history)
    assert third.outcome is Outcome.HOLD
    assert third.reason == "velocity: 3 payments by this debtor within 7200s (limit 2)"

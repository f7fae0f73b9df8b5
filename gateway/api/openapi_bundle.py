"""Contract schemas bundled into the OpenAPI document, saying exactly what the server accepts.

A contract is a standalone JSON Schema: it has an ``$id`` and refers to its own
``$defs`` (``#/$defs/party``). Copied as it is under ``components/schemas``, the
``$id`` moves the base URI away from the OpenAPI document and ``#/$defs/...``
points at the document root, so common tools cannot resolve it and API fuzzers
send almost nothing. ``bundle`` hoists every ``$defs`` entry into a component of
its own, rewrites the references to ``#/components/schemas/...`` and drops
``$id``/``$schema``.

It also writes down the rules the server applies beyond the contract: every
free-text string (no ``pattern``, ``format``, ``enum`` or ``const`` of its
own) gets ``safejson.TEXT_PATTERN`` (no control characters, no bidirectional
controls), which the body decoder enforces for every string.
"""

from __future__ import annotations

import copy
from typing import Any

import iso4217

from gateway.contracts.safejson import TEXT_PATTERN
from gateway.domain.money import minor_units, validate_currency
from gateway.errors import CurrencyError

__all__ = ["PAYABLE_CURRENCIES", "bundle", "narrow_collection", "narrow_instruction", "with_text_rule"]


def _payable() -> list[str]:
    codes = []
    for currency in iso4217.Currency:
        try:
            codes.append(validate_currency(currency.code))
        except CurrencyError:
            continue
    return sorted(set(codes))


#: every currency a payment or a credit limit may be in (active ISO 4217 with minor units)
PAYABLE_CURRENCIES: list[str] = _payable()


def with_text_rule(node: Any) -> Any:
    """A copy of a schema in which every unconstrained string carries the text rule."""
    if isinstance(node, list):
        return [with_text_rule(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: with_text_rule(value) for key, value in node.items()}
    types = node.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    if is_string and not any(k in node for k in ("pattern", "format", "enum", "const")):
        out["pattern"] = TEXT_PATTERN
    names = node.get("propertyNames")
    if isinstance(names, dict) and "pattern" not in names:  # keys of a free-form map are text too
        out["propertyNames"] = {**out["propertyNames"], "pattern": TEXT_PATTERN}
    return out


def _rewrite(node: Any, prefix: str) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, prefix) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            out[key] = f"#/components/schemas/{prefix}.{value.removeprefix('#/$defs/')}"
        else:
            out[key] = _rewrite(value, prefix)
    return out


def bundle(schema: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """Components for ``schema`` under ``name``: the schema itself and ``name.<def>`` for each of its ``$defs``."""
    body = copy.deepcopy(schema)
    for key in ("$id", "$schema"):
        body.pop(key, None)
    defs = body.pop("$defs", {})
    components = {name: with_text_rule(_rewrite(body, name))}
    for def_name, sub in defs.items():
        components[f"{name}.{def_name}"] = with_text_rule(_rewrite(sub, name))
    return components


#: fields whose contract pattern is looser than the domain rules the server applies: what they must be
_DOMAIN_FIELDS: dict[str, dict[str, Any]] = {
    "iban": {"type": "string", "format": "iban", "minLength": 15, "maxLength": 42},
    "bic": {"type": "string", "format": "bic", "pattern": "^[A-Z0-9]{8}([A-Z0-9]{3})?$"},
    "routing": {"type": "string", "format": "aba-routing", "pattern": "^[0-9]{9}$"},
    "number": {"type": "string", "pattern": "^[0-9A-Za-z-]{1,17}$"},
    "wallet": {"type": "string", "pattern": "^[A-Za-z0-9._:@+-]{3,64}$"},
    "lei": {"type": "string", "format": "lei", "pattern": "^[A-Z0-9]{18}[0-9]{2}$"},
    "creditor_reference": {"type": "string", "format": "creditor-reference", "pattern": "^RF[0-9]{2}[A-Z0-9]{1,21}$"},
}

_WHOLE = "[1-9][0-9]{0,14}"
#: a positive amount with at most N decimals, by N
_AMOUNT_BY_DECIMALS = {
    0: f"^{_WHOLE}$",
    2: f"^({_WHOLE}(\\.[0-9]{{1,2}})?|0\\.[0-9]?[1-9])$",
    3: f"^({_WHOLE}(\\.[0-9]{{1,3}})?|0\\.[0-9]{{0,2}}[1-9])$",
}


def _narrow_fields(node: Any) -> Any:
    if isinstance(node, list):
        return [_narrow_fields(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _narrow_fields(value) for key, value in node.items()}
    props = node.get("properties")
    if isinstance(props, dict):
        narrowed = dict(out["properties"])
        for name, rule in _DOMAIN_FIELDS.items():
            if isinstance(props.get(name), dict) and "$ref" not in props[name]:
                keep = {k: v for k, v in props[name].items() if k in ("description", "examples")}
                narrowed[name] = {**keep, **rule}
        out["properties"] = narrowed
    return out


def _amount_rules() -> tuple[list[str], list[dict[str, Any]]]:
    """(currencies, if/then rules) saying an amount is positive with at most its currency's minor units."""
    currencies = list(PAYABLE_CURRENCIES)
    groups: dict[int, list[str]] = {}
    for code in PAYABLE_CURRENCIES:
        groups.setdefault(minor_units(code), []).append(code)
    rules = []
    for decimals, codes in sorted(groups.items()):
        pattern = _AMOUNT_BY_DECIMALS.get(decimals)
        if pattern is None:
            currencies = [c for c in currencies if c not in codes]
            continue
        rules.append(
            {
                "if": {"properties": {"currency": {"enum": codes}}, "required": ["currency"]},
                "then": {"properties": {"value": {"pattern": pattern}}},
            }
        )
    return currencies, rules


#: what goes with each kind of collection (the server checks it after the contract: 422 naming the field)
_COLLECTION_KINDS: list[dict[str, Any]] = [
    {
        "properties": {"kind": {"const": "card_charge"}, "payer": {"required": ["card_token"]}},
        "not": {"anyOf": [{"required": ["mandate"]}, {"required": ["due_date"]}]},
    },
    {
        "properties": {"kind": {"const": "wallet_charge"}, "payer": {"required": ["wallet"]}},
        "not": {"anyOf": [{"required": ["mandate"]}, {"required": ["capture"]}, {"required": ["due_date"]}]},
    },
    {
        "properties": {"kind": {"const": "direct_debit"}, "payer": {"required": ["iban"]}},
        "required": ["mandate"],
        "not": {"required": ["capture"]},
    },
]


def narrow_collection(components: dict[str, dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    """The bundled collection components with the server's domain rules written in: the amount, the IBAN
    checksum (format ``iban``), and which payer instrument, mandate and capture go with each kind."""
    out = {key: _narrow_fields(value) for key, value in components.items()}
    main = copy.deepcopy(out[name])
    amount = main["properties"]["amount"]
    currencies, rules = _amount_rules()
    amount["properties"]["currency"] = {**amount["properties"]["currency"], "enum": currencies}
    amount["properties"]["value"] = {**amount["properties"]["value"], "pattern": _AMOUNT_BY_DECIMALS[3]}
    amount["allOf"] = rules
    for variant in main["properties"]["payer"]["oneOf"]:
        if "iban" in variant["properties"]:
            variant["properties"]["iban"] = {**variant["properties"]["iban"], **_DOMAIN_FIELDS["iban"]}
            variant["properties"]["bic"] = {**variant["properties"]["bic"], **_DOMAIN_FIELDS["bic"]}
    main["oneOf"] = copy.deepcopy(_COLLECTION_KINDS)
    out[name] = main
    return out


def narrow_instruction(components: dict[str, dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    """The bundled instruction components with the server's domain rules written into them.

    Checksums (IBAN, BIC, ABA routing number, LEI, ISO 11649 creditor reference)
    are named as formats, documented in docs/api.md; the amount must be positive
    with at most its currency's minor units, as ``if``/``then`` per group of currencies.
    """
    out = {key: _narrow_fields(value) for key, value in components.items()}
    main = dict(out[name])
    props = dict(main["properties"])
    props["currency"] = {**props["currency"], "enum": PAYABLE_CURRENCIES}
    props["amount"] = {**props["amount"], "pattern": _AMOUNT_BY_DECIMALS[3]}
    main["properties"] = props
    groups: dict[int, list[str]] = {}
    for code in PAYABLE_CURRENCIES:
        groups.setdefault(minor_units(code), []).append(code)
    rules = []
    for decimals, codes in sorted(groups.items()):
        pattern = _AMOUNT_BY_DECIMALS.get(decimals)
        if pattern is None:  # an exotic number of minor units: leave those currencies out rather than guess
            props["currency"]["enum"] = [c for c in props["currency"]["enum"] if c not in codes]
            continue
        rules.append(
            {
                "if": {"properties": {"currency": {"enum": codes}}, "required": ["currency"]},
                "then": {"properties": {"amount": {"pattern": pattern}}},
            }
        )
    main["allOf"] = [*main.get("allOf", []), *rules]
    out[name] = main
    return out

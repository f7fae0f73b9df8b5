"""Property-based fuzz (hypothesis) of every partner callback parser and of the intake decoder.

The property: whatever arrives, the parser answers with a result or one of its
documented errors (``SignatureError``, ``ContractError`` for partners;
``BodyError``/``TextError`` for the decoder; 4xx ``GatewayError`` for the whole
intake pipeline), never another exception, which would be a 500.

Inputs are raw bytes, byte-level mutations of real messages, and real messages
with one field replaced by an arbitrary JSON value, all validly signed so the
fuzz reaches past the signature check. The runs are derandomised and bounded
so ``make test`` stays fast and repeatable; ``GATEWAY_FUZZ_EXAMPLES=5000
GATEWAY_FUZZ_RANDOM=1`` explores further.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import load_settings
from gateway.contracts.registry import contracts
from gateway.contracts.safejson import BodyError, TextError, decode_json
from gateway.contracts.versions import parse_as_latest
from gateway.domain.instruction import parse_instruction
from gateway.errors import ContractError, GatewayError, SignatureError
from gateway.partners.adapter import Adapter, AdapterContext, StatusUpdate
from gateway.partners.signing import sign_payload
from gateway.plugins.manager import Plugins
from gateway_adapters.iso20022_bank.pain002 import (
    PaymentInformationStatus,
    StatusReport,
    TransactionStatus,
    build_pain002,
)
from gateway_simulators.card_acquirer.app import signed_webhook
from tests.hostile.signing import CALLBACK_SIGNING
from tests.support import PARTNER_FILES, example_instruction

FUZZ = settings(
    max_examples=int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "150")),
    derandomize=not os.environ.get("GATEWAY_FUZZ_RANDOM"),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: byte strings that have broken parsers before (surrogates, huge numbers, nesting, XML tricks, bidi)
INTERESTING = [
    b"\xed\xa0\x80",
    b"\xed\xb2\x80",
    b"\xff\xfe",
    b"\x00",
    "\u202e".encode(),
    b"9" * 400,
    b"-1",
    b"1e999",
    b"NaN",
    b"-Infinity",
    b"23:59:60",
    b"9999-12-31T23:59:59-23:59",
    b"[" * 300,
    b"{" * 50,
    b'"\\ud800"',
    b"<!DOCTYPE d [<!ENTITY e 'x'>]>",
    b"&e;",
    b"<![CDATA[x]]>",
    b"\r\n",
]


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few insertions, deletions and overwrites."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "overwrite"]))
        pos = draw(st.integers(0, len(data)))
        if op == "insert":
            data[pos:pos] = draw(st.sampled_from(INTERESTING) | st.binary(max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 32))]
        elif data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
    return bytes(data)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**18, max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "2026-12-31T23:59:60Z", "garbage", "ACSC", "RJCT", "paid", "\u0661\u0662", "x" * 600]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out += _paths(value, (*prefix, index))
    return out


@st.composite
def one_field_replaced(draw: st.DrawFn, seed: Any) -> Any:
    """``seed`` (a JSON document) with one value, anywhere, replaced (or a key removed)."""
    doc = copy.deepcopy(seed)
    path = draw(st.sampled_from(_paths(doc)[1:]))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return doc


def _adapter(name: str) -> Adapter:
    cls = Plugins().adapter_classes()[name]
    cfg = load_settings(env={}).section("partners")[name]
    if name == "ach_nacha":
        cfg = {**cfg, "spool_dir": "/nonexistent-fuzz-spool"}  # parse_callback never writes
    return cls.from_settings(cfg, AdapterContext(callback_url="http://127.0.0.1:1/cb"))


def _parse(adapter: Adapter, body: bytes) -> list[StatusUpdate] | None:
    """The adapter's reading of a validly signed ``body``; ``None`` when refused with a documented error."""
    header, secret = CALLBACK_SIGNING[adapter.name]
    headers = {header: sign_payload(secret.encode(), body)}
    try:
        return adapter.parse_callback(headers, body)
    except (SignatureError, ContractError):
        return None


def _read_or_refused(updates: list[StatusUpdate] | None) -> bool:
    """The parser's answer is a list of status updates, or a documented refusal (``None``)."""
    return updates is None or (isinstance(updates, list) and all(isinstance(u, StatusUpdate) for u in updates))


def _card_seed() -> Any:
    body, _ = signed_webhook({"webhook_secret": "x" * 8}, "ins_01J0000000000000000000001", "returned")
    return json.loads(body)


def _instant_seed() -> Any:
    return {
        "message_id": "MSG-1",
        "created_at": "2026-03-01T10:00:00Z",
        "original_message_id": "REQ-1",
        "instruction_id": "ins_01J0000000000000000000001",
        "end_to_end_id": "E2E-1",
        "transaction_id": "TX-1",
        "status": "RJCT",
        "reason": {"code": "AC04", "description": "closed"},
        "amount": "10.00",
        "currency": "USD",
    }


def _pain002_seed() -> bytes:
    tx = TransactionStatus(
        status="RJCT",
        instruction_id="ins_01J0000000000000000000001",
        end_to_end_id="INV-1",
        reason_code="AC04",
        reason="closed account",
        accepted_at=datetime(2026, 3, 1, 10, tzinfo=UTC),
        account_servicer_reference="BANKREF1",
        amount=None,
    )
    report = StatusReport(
        message_id="MSG1",
        created_at=datetime(2026, 3, 1, tzinfo=UTC),
        original_message_id="ORIG1",
        payments=(PaymentInformationStatus("PMT1", transactions=(tx,)),),
    )
    return build_pain002(report)


ACH_SEED = (Path(PARTNER_FILES) / "nacha" / "return-WEB.ach").read_bytes()

#: adapter → its seed message as bytes
SEEDS: dict[str, Callable[[], bytes]] = {
    "card_acquirer": lambda: json.dumps(_card_seed()).encode(),
    "instant_rtp": lambda: json.dumps(_instant_seed()).encode(),
    "iso20022_bank": _pain002_seed,
    "ach_nacha": lambda: ACH_SEED,
}


def test_every_builtin_adapter_with_callbacks_is_fuzzed() -> None:
    assert set(SEEDS) == set(Plugins().adapter_classes()) & set(CALLBACK_SIGNING)
    for name, seed in SEEDS.items():
        updates = _parse(_adapter(name), seed())
        assert updates and _read_or_refused(updates), f"{name}: the seed message must be readable"


@pytest.mark.parametrize("name", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_callback_parser_raises_only_documented_errors_on_mutated_bytes(name: str, data: st.DataObject) -> None:
    body = data.draw(mutated(SEEDS[name]()) | st.binary(max_size=300))
    assert _read_or_refused(_parse(_adapter(name), body))


@pytest.mark.parametrize("name", ["card_acquirer", "instant_rtp"])
@FUZZ
@given(data=st.data())
def test_json_callback_parser_raises_only_documented_errors_on_any_field_value(name: str, data: st.DataObject) -> None:
    seed = _card_seed() if name == "card_acquirer" else _instant_seed()
    doc = data.draw(one_field_replaced(seed))
    assert _read_or_refused(_parse(_adapter(name), json.dumps(doc).encode()))


@pytest.mark.parametrize("name", sorted(CALLBACK_SIGNING))
@FUZZ
@given(header=st.text(max_size=200) | st.sampled_from([b.decode("latin-1") for b in INTERESTING]))
def test_signature_header_parsing_raises_only_signature_errors(name: str, header: str) -> None:
    adapter = _adapter(name)
    headers = {CALLBACK_SIGNING[name][0]: header}
    with pytest.raises(SignatureError):
        adapter.parse_callback(headers, SEEDS[name]())


# -- the intake decoder -------------------------------------------------------------------------------

INSTRUCTION = json.dumps(example_instruction()).encode()


@FUZZ
@given(raw=mutated(INSTRUCTION) | st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_intake_decoder_raises_only_body_and_text_errors(raw: bytes) -> None:
    try:
        decode_json(raw)
    except (BodyError, TextError) as exc:
        assert exc.status in (400, 422)
        assert exc.errors and exc.errors[0].pointer is not None


SAFE_TEXT = st.text(
    st.characters(
        blacklist_categories=["Cs", "Cc"], blacklist_characters="\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    ),
    max_size=10,
)
SAFE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SAFE_TEXT, inner, max_size=3),
    max_leaves=12,
)


@FUZZ
@given(doc=SAFE_JSON)
def test_intake_decoder_reads_every_acceptable_document_as_json_loads_does(doc: Any) -> None:
    raw = json.dumps(doc, ensure_ascii=bool(hash(repr(doc)) % 2)).encode()
    assert decode_json(raw) == json.loads(raw)


@FUZZ
@given(doc=one_field_replaced(example_instruction()))
def test_intake_pipeline_refuses_any_instruction_with_a_4xx(doc: Any) -> None:
    """Decoder, contract and domain parsing together: a client error, or an instruction."""
    registry = contracts()
    try:
        decoded = decode_json(json.dumps(doc).encode())
        registry.validate("instruction", decoded, "1.0")
        parse_as_latest(registry, "instruction", "1.0", decoded, parse_instruction)
    except GatewayError as exc:
        assert 400 <= exc.status < 500, exc

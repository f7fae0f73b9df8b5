"""Schemathesis against a live gateway: every operation of the OpenAPI document, every check on.

Positive cases (schema-valid requests, real instruction bodies included) must be
accepted, negative ones refused with a 4xx, responses must match the document,
and nothing may answer 5xx. The domain formats the document names (``iban``,
``bic``, ``aba-routing``, ``lei``, ``creditor-reference``) are generated from
known-valid values. Bounded and derandomised so ``make test`` stays fast;
``GATEWAY_SCHEMATHESIS_EXAMPLES`` raises the number of cases per operation and mode.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from gateway.domain.clock import system_clock
from gateway.store import repo
from tests.support import Database, LiveGateway, start_gateway, stop_gateway

EXAMPLES = int(os.environ.get("GATEWAY_SCHEMATHESIS_EXAMPLES", "15"))

#: known-valid values for the formats the OpenAPI document names (checked by the server's domain rules)
FORMATS = {
    "iban": ["DE89370400440532013000", "FR1420041010050500013M02606", "GB29NWBK60161331926819", "NL91ABNA0417164300"],
    "bic": ["COBADEFFXXX", "BNPAFRPPXXX", "DEUTDEFF", "NDEASESS"],
    "aba-routing": ["021000021", "011000015", "026009593"],
    "lei": ["529900T8BM49AURSDO55", "5493001KJTIIGC8Y1R12"],
    "creditor-reference": ["RF18539007547034", "RF712348231"],
}
for _name, _values in FORMATS.items():
    schemathesis.openapi.format(_name, st.sampled_from(_values))


@pytest.fixture
async def api(database: Database) -> AsyncIterator[tuple[LiveGateway, str]]:
    """A gateway with every partner configured (no dispatch) and one key with every scope."""
    gw = await start_gateway(database, simulators=False, dispatch=False, poll=False)
    async with gw.runtime.engine.begin() as conn:
        key = await repo.create_api_key(conn, "erp-fuzz", ["instructions", "finance", "admin"], system_clock())
    try:
        yield gw, key
    finally:
        await stop_gateway(gw)


def _run(url: str, key: str, document: dict[str, Any]) -> tuple[int, dict[str, list[str]]]:
    """Every operation in both modes; (operations run, failures by operation and mode)."""
    config = SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {"apiKey": {"bearer": key}}},
            "operations": [
                # A statement file's validity (a camt.053 whose balances add up, a NACHA file whose control
                # totals hold) is not expressible in JSON Schema: any generated body is a file the server
                # must refuse with 422 (one line), so 422 counts as the expected answer to it. A CSV mapping is
                # named from the deployment's configuration (reconciliation.csv_mappings, none here): 400.
                {
                    "include-operation-id": "importStatement",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422", "429"]
                        }
                    },
                },
                # A batch item is checked on its own by the instruction contract (the document declares items as
                # any JSON): with all_or_nothing, one refused item is a 422 for the whole batch.
                {
                    "include-operation-id": "createInstructionBatch",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
                        }
                    },
                },
                # Likewise a pain.001 (its XSD and control figures): any generated string is a file to refuse.
                {
                    "include-operation-id": "submitFile",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
                        }
                    },
                },
                # Control totals: that a three-letter code is an ISO 4217 currency, and that an amount has
                # no more decimals than that currency, are domain rules the schema does not carry: 422.
                {
                    "include-operation-id": "postControlTotals",
                    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "409", "422"]}},
                },
            ],
        }
    )
    schema = schemathesis.openapi.from_dict(document, config=config)
    failures: dict[str, list[str]] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                case.validate_response(case.call(base_url=url, timeout=10))

            try:
                check()
            except Unsatisfiable:
                continue  # nothing to negate (no parameters, no body)
            except Exception as exc:
                failures.setdefault(f"{operation.label} [{mode.value}]", []).append(str(exc)[:1500])
    return operations, failures


async def test_every_operation_passes_every_schemathesis_check(api: tuple[LiveGateway, str]) -> None:
    gw, key = api
    async with gw.session.get(f"{gw.url}/openapi.json") as resp:
        document = await resp.json()
    operations, failures = await asyncio.to_thread(_run, gw.url, key, document)
    assert operations == sum(len(ops) for ops in document["paths"].values())
    assert not failures, "\n\n".join(where + ":\n" + "\n".join(found) for where, found in failures.items())
    async with gw.session.get(f"{gw.url}/v1/instructions", headers=gw.headers(key)) as listed:
        assert (await listed.json())["items"], "no schema-valid instruction was accepted: the fuzz sent nothing real"

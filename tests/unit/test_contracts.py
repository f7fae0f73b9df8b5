"""Contracts: versioned JSON Schemas, validators built once, JSON pointers in every error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.contracts.registry import ContractRegistry, contracts
from gateway.errors import ContractError
from tests.support import REPO, example_instruction


def test_every_contract_file_states_its_name_and_version() -> None:
    for path in sorted((REPO / "contracts").glob("*/*.json")):
        schema = json.loads(path.read_text())
        assert schema["x-contract"] == path.parent.name, path
        assert schema["x-version"] == path.stem, path
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", path


def test_validators_are_built_once_and_cached() -> None:
    registry = contracts()
    assert registry is contracts()
    assert registry.validator("instruction") is registry.validator("instruction", registry.latest("instruction"))
    assert registry.validator("instruction", "1.0") is registry.validator("instruction", "1.0")


@pytest.mark.parametrize("version", ["1.0", "1.1", "2.0"])
def test_every_contract_version_accepts_its_own_examples(version: str) -> None:
    registry = contracts()
    examples = registry.schema("instruction", version)["examples"]
    assert examples
    assert [registry.errors("instruction", e, version) for e in examples] == [[]] * len(examples)


def test_the_test_suite_example_is_a_valid_1x_instruction() -> None:
    assert contracts().errors("instruction", example_instruction(), "1.0") == []
    assert contracts().errors("instruction", example_instruction(), "1.1") == []


@pytest.mark.parametrize(
    ("account", "pointer"),
    [
        ({"iban": 42}, "/creditor/account/iban"),
        ({"number": "123"}, "/creditor/account/routing"),
        ({"routing": "12"}, "/creditor/account/routing"),
        ({}, "/creditor/account/iban"),
    ],
)
def test_account_errors_point_at_the_field(account: dict[str, object], pointer: str) -> None:
    body = example_instruction()
    body["creditor"]["account"] = account
    errors = contracts().errors("instruction", body, "1.1")
    assert errors and errors[0].pointer.startswith("/creditor/account")
    assert any(e.pointer == pointer for e in errors), errors


def test_pointer_escapes_slashes_and_tildes() -> None:
    body = example_instruction(metadata={"a/b~c": "x" * 300})
    errors = contracts().errors("instruction", body, "1.1")
    assert errors[0].pointer == "/metadata/a~1b~0c"


def test_error_names_the_first_failure_and_lists_all() -> None:
    body = example_instruction(type="gift", urgency="now")
    with pytest.raises(ContractError) as info:
        contracts().validate("instruction", body, "1.1")
    pointers = [e.pointer for e in info.value.errors]
    assert set(pointers) == {"/type", "/urgency"}
    assert info.value.message.startswith(pointers[0])


def test_unknown_contract_version_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"unknown version '9\.9'"):
        contracts().validator("instruction", "9.9")


def test_registry_loads_versions_in_numeric_order(tmp_path: Path) -> None:
    for version in ("1.0", "1.10", "1.2"):
        folder = tmp_path / "thing"
        folder.mkdir(exist_ok=True)
        (folder / f"{version}.json").write_text(
            json.dumps({"$id": f"urn:thing:{version}", "x-contract": "thing", "x-version": version, "type": "object"})
        )
    registry = ContractRegistry(tmp_path)
    assert registry.versions("thing") == ["1.0", "1.2", "1.10"]
    assert registry.latest("thing") == "1.10"


def test_shipped_contracts_use_the_proven_fast_check_and_agree_with_jsonschema() -> None:
    registry = contracts()
    for message in registry.messages():
        for version in registry.versions(message):
            fast = registry.fast_check(message, version)
            assert fast is not None, (
                f"{message} {version} lost its fast path: check gateway.contracts.fastcheck eligibility"
            )
            for example in registry.schema(message, version).get("examples", []):
                assert fast(example) is registry.validator(message, version).is_valid(example) is True
    bad = example_instruction(amount=1)
    assert registry.fast_check("instruction", "1.1")(bad) is False  # type: ignore[misc]
    assert registry.errors("instruction", bad, "1.1")[0].pointer == "/amount"

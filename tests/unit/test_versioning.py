"""Version negotiation, lifecycle headers, and upcasting older instructions to the newest shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.contracts.registry import ContractRegistry, contracts
from gateway.contracts.versions import (
    VersionInfo,
    compatibility_lines,
    default_version,
    has_upcaster,
    negotiate,
    parse_as_latest,
    requested_version,
    sender_pointer,
    upcast,
)
from gateway.domain.instruction import parse_instruction
from gateway.errors import ContractVersionError, DomainError, FieldError
from tests.support import example_instruction

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
AFTER_SUNSET = datetime(2027, 6, 30, 0, 0, tzinfo=UTC)

REQUESTED = [
    # (Contract-Version header, Content-Type, expected)
    (None, "application/json", None),
    ("1.1", "application/json", "1.1"),
    (None, "application/json; version=2.0", "2.0"),
    (None, 'application/json; charset=utf-8; version="1.0"', "1.0"),
    ("2.0", "application/json; version=2.0", "2.0"),
    (" 1.1 ", None, "1.1"),
]


@pytest.mark.parametrize(("header", "content_type", "expected"), REQUESTED)
def test_requested_version_reads_header_and_media_type(
    header: str | None, content_type: str | None, expected: str | None
) -> None:
    assert requested_version(header, content_type) == expected


@pytest.mark.parametrize(
    ("header", "content_type", "message"),
    [
        ("1.1", "application/json; version=2.0", "disagree"),
        ("v2", None, "Contract-Version must be a contract version like 1.1"),
        (None, "application/json; version=latest", "version= must be a contract version like 1.1"),
    ],
)
def test_bad_or_conflicting_version_requests_are_refused(header: str | None, content_type: str, message: str) -> None:
    with pytest.raises(ContractVersionError, match=message):
        requested_version(header, content_type)


def test_compatibility_lines_split_at_breaking_versions() -> None:
    assert compatibility_lines(contracts(), "instruction") == [["1.0", "1.1"], ["2.0"]]
    assert compatibility_lines(contracts(), "status-event") == [["1.0"]]


def test_default_is_the_newest_version_of_the_oldest_line_still_served() -> None:
    assert default_version(contracts(), "instruction", NOW) == "1.1"
    assert default_version(contracts(), "instruction", AFTER_SUNSET) == "1.1"


def test_negotiation_prefers_request_then_pin_then_default() -> None:
    registry = contracts()
    assert negotiate(registry, "instruction", requested="2.0", pinned="1.0", now=NOW).version == "2.0"
    assert negotiate(registry, "instruction", requested=None, pinned="1.0", now=NOW).version == "1.0"
    assert negotiate(registry, "instruction", requested=None, pinned=None, now=NOW).version == "1.1"


def test_a_version_past_its_sunset_is_refused_and_no_longer_offered() -> None:
    with pytest.raises(ContractVersionError, match=r"1\.0 was retired on 2027-06-30; available: 1\.1, 2\.0"):
        negotiate(contracts(), "instruction", requested="1.0", pinned=None, now=AFTER_SUNSET)


def test_only_deprecated_versions_carry_lifecycle_headers() -> None:
    registry = contracts()
    assert VersionInfo.of(registry, "instruction", "1.0").lifecycle_headers() == {
        "Deprecation": "@1795651200",
        "Sunset": "Wed, 30 Jun 2027 00:00:00 GMT",
    }
    assert VersionInfo.of(registry, "instruction", "1.1").lifecycle_headers() == {}
    assert VersionInfo.of(registry, "instruction", "2.0").lifecycle_headers() == {}


def test_every_breaking_request_version_has_an_upcaster() -> None:
    registry = contracts()
    for message in registry.messages():
        for version in registry.versions(message):
            info = VersionInfo.of(registry, message, version)
            if info.direction == "request" and info.compatibility == "breaking":
                assert has_upcaster(message, version), f"{message} {version} is breaking but has no upcaster"


def test_every_older_example_upcasts_to_a_valid_newest_instruction() -> None:
    registry = contracts()
    latest = registry.latest("instruction")
    checked = 0
    for version in registry.versions("instruction"):
        for example in [*registry.schema("instruction", version)["examples"], example_instruction()]:
            if registry.errors("instruction", example, version):
                continue  # the shared 1.x example is not a 2.0 document
            assert registry.errors("instruction", upcast(registry, "instruction", version, example), latest) == []
            checked += 1
    assert checked == 6  # 1.0, 1.1: own example + the shared one; 2.0: its two examples


def test_upcast_moves_1x_remittance_text_and_leaves_the_original_alone() -> None:
    body = example_instruction(remittance_information="Invoice 9")
    latest = upcast(contracts(), "instruction", "1.0", body)
    assert latest["remittance_information"] == {"unstructured": "Invoice 9"}
    assert body["remittance_information"] == "Invoice 9"
    assert upcast(contracts(), "instruction", "2.0", latest) is latest


def test_domain_error_pointers_are_mapped_back_to_the_senders_version() -> None:
    registry = contracts()
    moved = "/remittance_information/unstructured"
    assert sender_pointer(registry, "instruction", "1.1", moved) == "/remittance_information"
    assert sender_pointer(registry, "instruction", "2.0", moved) == moved

    def refuse_remittance(doc: dict[str, object]) -> object:
        raise DomainError("no", errors=[FieldError(moved, "no")])

    with pytest.raises(DomainError) as info:
        parse_as_latest(registry, "instruction", "1.0", example_instruction(), refuse_remittance)
    assert [e.pointer for e in info.value.errors] == ["/remittance_information"]


def test_the_domain_parse_reads_structured_remittance_and_ultimate_parties() -> None:
    doc = upcast(contracts(), "instruction", "1.1", example_instruction())
    doc["remittance_information"] = {"structured": {"creditor_reference": "RF18539007547034", "type": "SCOR"}}
    doc["ultimate_creditor"] = {"name": "Nordic Parts Finance AB", "identification": {"bic": "NDEASESSXXX"}}
    data = parse_instruction(doc)
    assert data.creditor_reference == "RF18539007547034"
    assert data.remittance_information is None
    assert data.ultimate_creditor is not None and data.ultimate_creditor.bic == "NDEASESSXXX"


def test_unknown_pin_in_a_registry_without_it_names_the_pin(tmp_path: Path) -> None:
    folder = tmp_path / "instruction"
    folder.mkdir()
    schema = {"$id": "urn:t:1.0", "x-contract": "instruction", "x-version": "1.0", "x-direction": "request"}
    (folder / "1.0.json").write_text(json.dumps(schema))
    with pytest.raises(ContractVersionError, match=r"pinned version\); available: 1\.0"):
        negotiate(ContractRegistry(tmp_path), "instruction", requested=None, pinned="3.0", now=NOW)

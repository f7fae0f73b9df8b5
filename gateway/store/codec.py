"""Instruction rows ↔ domain values: encrypts accounts on the way in, decrypts for adapters."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from gateway.domain.accounts import Account, Agent, Party, UltimateParty, parse_account, parse_ultimate_party
from gateway.domain.instruction import InstructionData
from gateway.domain.money import Money
from gateway.domain.order import PaymentOrder
from gateway.domain.status import Status
from gateway.store.encryption import FieldCipher

__all__ = ["InstructionCodec"]


_RECEIVED = Status.RECEIVED.value


def _account_context(instruction_id: str, role: str) -> str:
    # AAD binds a ciphertext to its row and column: copied elsewhere, it won't decrypt.
    return f"instruction:{instruction_id}:{role}"


@lru_cache(maxsize=4096)
def _plaintext(account: Account) -> str:
    """An account as it is encrypted (its JSON form); cached, as a business unit pays the same accounts again."""
    return json.dumps(account.as_dict())


class InstructionCodec:
    """Builds instruction rows and reads them back, with account fields encrypted at rest."""

    def __init__(self, cipher: FieldCipher) -> None:
        self.cipher = cipher
        #: (debtor account, creditor account) → the row's ``masked``, shared by the rows of that pair (read-only)
        self._masks: dict[tuple[Account, Account], dict[str, Any]] = {}

    def _masked(self, debtor: Account, creditor: Account) -> dict[str, Any]:
        """Both accounts' masks; one dict per pair, so a batch's JSON encoding of it is done once (``bulk``)."""
        pair = (debtor, creditor)
        found = self._masks.get(pair)
        if found is None:
            if len(self._masks) >= 4096:
                self._masks.clear()
            found = self._masks[pair] = {"debtor": debtor.masked(), "creditor": creditor.masked()}
        return found

    def new_row(
        self,
        instruction_id: str,
        business_unit_id: str,
        data: InstructionData,
        contract_version: str,
        now: datetime,
        submitted_by: str | None = None,
    ) -> dict[str, Any]:
        """The row of a new instruction (``received``), its accounts encrypted."""
        return self.new_rows([(instruction_id, data)], business_unit_id, contract_version, now, submitted_by)[0]

    def new_rows(
        self,
        instructions: Sequence[tuple[str, InstructionData]],
        business_unit_id: str,
        contract_version: str,
        now: datetime,
        submitted_by: str | None = None,
    ) -> list[dict[str, Any]]:
        """``new_row`` of each (id, instruction): the accounts of all of them encrypted in one go (``encrypt_many``)."""
        rows: list[dict[str, Any]] = []
        fields: list[tuple[str, str]] = []
        for instruction_id, data in instructions:
            debtor, creditor, money = data.debtor, data.creditor, data.money
            fields.append((_plaintext(debtor.account), _account_context(instruction_id, "debtor")))
            fields.append((_plaintext(creditor.account), _account_context(instruction_id, "creditor")))
            rows.append(
                {
                    "id": instruction_id,
                    "business_unit_id": business_unit_id,
                    "reference": data.reference,
                    "type": data.type,
                    "amount": str(money.amount),
                    "amount_minor": money.minor,
                    "currency": money.currency,
                    "status": _RECEIVED,
                    "debtor_name": debtor.name,
                    "debtor_account": None,  # encrypted below, all together
                    "debtor_agent": debtor.agent.bic if debtor.agent else None,
                    "creditor_name": creditor.name,
                    "creditor_account": None,
                    "creditor_agent": creditor.agent.bic if creditor.agent else None,
                    "masked": self._masked(debtor.account, creditor.account),
                    "remittance_information": data.remittance_information,
                    "creditor_reference": data.creditor_reference,
                    "purpose": data.purpose,
                    "ultimate_debtor": data.ultimate_debtor.as_dict() if data.ultimate_debtor else None,
                    "ultimate_creditor": data.ultimate_creditor.as_dict() if data.ultimate_creditor else None,
                    "requested_execution_date": data.requested_execution_date,
                    "urgency": data.urgency,
                    "channel": data.channel,
                    "metadata": dict(data.metadata),
                    "contract_version": contract_version,
                    "adapter": None,
                    "partner_reference": None,
                    "event_count": 1,
                    "created_at": now,
                    "updated_at": now,
                    "submitted_by": submitted_by,
                }
            )
        tokens = self.cipher.encrypt_many(fields)
        for k, row in enumerate(rows):
            row["debtor_account"] = tokens[2 * k]
            row["creditor_account"] = tokens[2 * k + 1]
        return rows

    def _party(self, row: Mapping[str, Any], role: str) -> Party:
        plain = self.cipher.decrypt(row[f"{role}_account"], _account_context(row["id"], role))
        account = parse_account(json.loads(plain), f"/{role}/account")
        agent = Agent(row[f"{role}_agent"]) if row[f"{role}_agent"] else None
        return Party(name=row[f"{role}_name"], account=account, agent=agent)

    def payment_order(self, row: Mapping[str, Any], business_unit: str) -> PaymentOrder:
        """The decrypted instruction as an adapter receives it."""
        reference = row.get("creditor_reference")
        return PaymentOrder(
            id=row["id"],
            business_unit=business_unit,
            reference=row["reference"],
            type=row["type"],
            money=Money(row["amount"], row["currency"]),
            debtor=self._party(row, "debtor"),
            creditor=self._party(row, "creditor"),
            # adapters that only know text still pass a structured reference on (see PaymentOrder)
            remittance_information=row["remittance_information"] or reference,
            requested_execution_date=row["requested_execution_date"],
            urgency=row["urgency"],
            metadata=dict(row["metadata"] or {}),
            partner_reference=row["partner_reference"],
            creditor_reference=reference,
            purpose=row.get("purpose"),
            ultimate_debtor=_ultimate(row.get("ultimate_debtor"), "/ultimate_debtor"),
            ultimate_creditor=_ultimate(row.get("ultimate_creditor"), "/ultimate_creditor"),
        )


def _ultimate(stored: dict[str, Any] | None, pointer: str) -> UltimateParty | None:
    return parse_ultimate_party(stored, pointer) if stored else None


def public_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """The API representation of an instruction row: accounts masked, never decrypted."""
    masked = row["masked"] or {}
    debtor: dict[str, Any] = {"name": row["debtor_name"], "account": masked.get("debtor")}
    if row["debtor_agent"]:
        debtor["agent"] = {"bic": row["debtor_agent"]}
    creditor: dict[str, Any] = {"name": row["creditor_name"], "account": masked.get("creditor")}
    if row["creditor_agent"]:
        creditor["agent"] = {"bic": row["creditor_agent"]}
    date = row["requested_execution_date"]
    return {
        "id": row["id"],
        "reference": row["reference"],
        "type": row["type"],
        "amount": row["amount"],
        "currency": row["currency"],
        "status": row["status"],
        "debtor": debtor,
        "creditor": creditor,
        "remittance_information": row["remittance_information"],
        "creditor_reference": row.get("creditor_reference"),
        "purpose": row.get("purpose"),
        "ultimate_debtor": row.get("ultimate_debtor"),
        "ultimate_creditor": row.get("ultimate_creditor"),
        "requested_execution_date": date.isoformat() if date else None,
        "urgency": row["urgency"],
        "channel": row["channel"],
        "metadata": row["metadata"] or {},
        "contract_version": row["contract_version"],
        "adapter": row["adapter"],
        "partner_reference": row["partner_reference"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def event_view(row: Mapping[str, Any], reference: str) -> dict[str, Any]:
    """One event row in the ``status-event`` contract's shape."""
    return {
        "instruction_id": row["instruction_id"],
        "reference": reference,
        "sequence": row["sequence"],
        "status": row["status"],
        "previous_status": row["previous_status"],
        "applied": bool(row["applied"]),
        "outcome": row["outcome"],
        "source": row["source"],
        "adapter": row["adapter"],
        "partner_reference": row["partner_reference"],
        "partner_status": row["partner_status"],
        "reason_code": row["reason_code"],
        "reason": row["reason"],
        "occurred_at": row["occurred_at"].isoformat(),
    }

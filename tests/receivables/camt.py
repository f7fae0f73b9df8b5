"""A camt.053.001.08 statement of incoming credits, as a bank would send it to the enterprise."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from xml.sax.saxutils import escape

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


@dataclass(frozen=True)
class Credit:
    amount: str
    currency: str = "EUR"
    reference: str | None = None  # Strd/CdtrRefInf/Ref
    text: str | None = None  # Ustrd
    payer: str = "Distributor Nord GmbH"
    payer_iban: str | None = "DE44500105175407324931"
    servicer_ref: str = "BANKREF"


def _balance(code: str, amount: str) -> str:
    return (
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{amount}</Amt>'
        "<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-04</Dt></Dt></Bal>"
    )


def camt053(statement_id: str, credits: list[Credit], *, sequence: int = 1, opening: str = "0.00") -> bytes:
    total = sum(Decimal(c.amount) for c in credits)
    closing = Decimal(opening) + total
    entries = []
    for n, c in enumerate(credits, start=1):
        remittance = ""
        if c.reference:
            scor = "<Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>"
            remittance += f"<Strd><CdtrRefInf>{scor}<Ref>{escape(c.reference)}</Ref></CdtrRefInf></Strd>"
        if c.text:
            remittance += f"<Ustrd>{escape(c.text)}</Ustrd>"
        account = f"<DbtrAcct><Id><IBAN>{c.payer_iban}</IBAN></Id></DbtrAcct>" if c.payer_iban else ""
        entries.append(
            f"""<Ntry><Amt Ccy="{c.currency}">{c.amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><Dt>2026-12-04</Dt></BookgDt><ValDt><Dt>2026-12-04</Dt></ValDt><AcctSvcrRef>{c.servicer_ref}{n}</AcctSvcrRef>
<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs><Amt Ccy="{c.currency}">{c.amount}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><RltdPties><Dbtr><Pty><Nm>{escape(c.payer)}</Nm></Pty></Dbtr>{account}</RltdPties>
<RmtInf>{remittance}</RmtInf></TxDtls></NtryDtls></Ntry>"""
        )
    created = "<CreDtTm>2026-12-04T18:00:00Z</CreDtTm>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{NS}"><BkToCstmrStmt><GrpHdr><MsgId>MSG-{statement_id}</MsgId>{created}</GrpHdr>
<Stmt><Id>{statement_id}</Id><ElctrncSeqNb>{sequence}</ElctrncSeqNb>{created}
<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
{_balance("OPBD", opening)}{_balance("CLBD", f"{closing:.2f}")}
<TxsSummry><TtlNtries><NbOfNtries>{len(credits)}</NbOfNtries></TtlNtries></TxsSummry>
{"".join(entries)}</Stmt></BkToCstmrStmt></Document>""".encode()

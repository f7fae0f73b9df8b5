"""The ACH file drop's JSON answers: JSON Schemas in ``contracts/partners/ach_nacha/``.

The NACHA files themselves are checked by ``nacha.read_file`` (every control
figure); these contracts cover what the file drop answers around them: the
acknowledgement of an upload, an entry's status and the list of return files.
The adapter reads every answer through them (one that does not fit is no
answer: the file is kept and sent again), and the simulator's answers are
tested against the very same files.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.contracts.registry import ContractRegistry
from gateway.errors import FieldError

__all__ = [
    "CONTRACTS_DIR",
    "ENTRY_STATUS",
    "FILE_ACKNOWLEDGEMENT",
    "RETURN_FILES",
    "contract_files",
    "errors",
    "partner_contracts",
]

#: ``<message>/<version>.json`` files of this partner (package data of ``gateway_contracts``)
CONTRACTS_DIR: Path = Path(str(resources.files("gateway_contracts"))) / "partners" / "ach_nacha"

FILE_ACKNOWLEDGEMENT = "file-acknowledgement"
ENTRY_STATUS = "entry-status"
RETURN_FILES = "return-files"


@cache
def partner_contracts() -> ContractRegistry:
    """The registry of this partner's contracts (loaded and compiled once)."""
    return ContractRegistry(root=CONTRACTS_DIR)


def contract_files() -> dict[str, str]:
    """Message name → schema file, for ``Adapter.partner_contracts``."""
    return {path.parent.name: str(path) for path in sorted(CONTRACTS_DIR.glob("*/*.json"))}


def errors(message: str, instance: Any) -> list[FieldError]:
    """Every failing field of ``instance`` against ``message``, best match first; empty when it fits."""
    return partner_contracts().errors(message, instance)

"""The conformance kit fails an adapter that breaks the contract, and says what is wrong."""

from __future__ import annotations

import pytest

from gateway.devtools.conformance import run_check
from gateway.plugins.manager import Plugins
from tests.plugins import broken_adapter

FLAWS = [
    ("idempotent_submit", "submitted twice got partner references"),
    ("timeout_is_unknown", "a timeout raised PermanentPartnerError"),
    ("rejection", "but the adapter reported settled, not rejected"),
    ("forged_callback", r"a forged callback \(no signature\) was accepted"),
    ("faults", r"under fault hang .* raised PermanentPartnerError"),
]


@pytest.fixture
def plugins() -> Plugins:
    return Plugins(extra=[broken_adapter])


@pytest.mark.parametrize(("check", "message"), FLAWS)
async def test_kit_fails_the_broken_adapter(plugins: Plugins, check: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        await run_check("broken_bank", check, plugins=plugins)


@pytest.mark.parametrize("check", ["capabilities", "contracts"])
async def test_kit_passes_what_the_broken_adapter_does_right(plugins: Plugins, check: str) -> None:
    assert await run_check("broken_bank", check, plugins=plugins) == []

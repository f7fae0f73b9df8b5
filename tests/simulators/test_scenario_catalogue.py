"""``GET /_sim/scenarios``: each simulator offers the shipped scenarios of its own partner and every fault kind."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gateway.config import load_settings
from gateway.plugins.manager import Plugins
from gateway_simulators.core.scenario import SCENARIO_DIR


def shipped_for(partner: str) -> set[str]:
    """The shipped files whose ``partner`` is this one, read here on their own."""
    return {
        path.stem
        for path in SCENARIO_DIR.glob("*.yaml")
        if (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("partner") in (None, partner)
    }


@pytest.mark.parametrize("partner", ["iso20022_bank", "card_acquirer", "instant_rtp", "ach_nacha"])
async def test_a_simulator_lists_its_partners_scenarios_and_serves_each_one(aiohttp_client: Any, partner: str) -> None:
    settings = {
        k: v for k, v in load_settings(env={}).section("simulators")[partner].items() if k not in ("host", "port")
    }
    client = await aiohttp_client(Plugins().simulator_factories()[partner](settings))
    listing = await (await client.get("/_sim/scenarios")).json()
    names = {s["name"] for s in listing["scenarios"]}
    first = sorted(names)[0]
    one = await client.get(f"/_sim/scenarios/{first}")
    document = (await one.json())["document"]
    played = await client.put("/_sim/scenario", json=document)
    now = await (await client.get("/_sim/scenario")).json()
    foreign = "happy" if partner != "iso20022_bank" else "card-happy"
    refused = await client.get(f"/_sim/scenarios/{foreign}")

    assert listing["partner"] == partner and names == shipped_for(partner) and names
    assert {"http_error", "truncated_body", "callback_missing"} <= set(listing["fault_kinds"])
    assert one.status == 200 and played.status == 200 and now["name"] == document["name"]
    assert refused.status == 404 and foreign in (await refused.json())["error"]["message"]

"""Partner simulators (import name ``gateway_simulators``): aiohttp apps for QA and tests."""

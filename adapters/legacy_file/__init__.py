"""The legacy hand-off adapter (files the old system picks up, its status feed back), a pluggy plugin.

Registered through the ``gateway.adapters`` entry point like every built-in adapter; the
staged rollout sends it the payments a partner does not take yet (``rollout.handoff_adapter``,
docs/go-live.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.hookspecs import hookimpl
from gateway_adapters.legacy_file.adapter import LegacyFileAdapter

if TYPE_CHECKING:
    from gateway.adapter import Adapter

__all__ = ["LegacyFileAdapter", "gateway_adapter_classes"]


@hookimpl
def gateway_adapter_classes() -> Sequence[type[Adapter]]:
    return [LegacyFileAdapter]

"""Public import path of the adapter conformance kit: ``pytest -p gateway.devtools.conformance --adapter NAME``.

The kit lives in :mod:`gateway.devtools.conformance`; this module re-exports it,
pytest hooks and fixture included, so the ``-p`` plugin name stays short and stable.
"""

from gateway.devtools.conformance import *  # noqa: F403
from gateway.devtools.conformance import __all__ as __all__

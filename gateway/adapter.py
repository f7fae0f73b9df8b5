"""Public import path of the ``Adapter`` interface and the values it exchanges, for adapter packages.

The interface lives in :mod:`gateway.partners.adapter`.
"""

from gateway.partners.adapter import *  # noqa: F403
from gateway.partners.adapter import __all__ as __all__

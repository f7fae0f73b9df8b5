"""Public import path of the hook specifications and markers, for adapter packages.

``from gateway.plugins.hookspecs import hookimpl`` is what a plugin writes; the
specifications live in :mod:`gateway.plugins.hookspecs`.
"""

from gateway.plugins.hookspecs import *  # noqa: F403
from gateway.plugins.hookspecs import __all__ as __all__

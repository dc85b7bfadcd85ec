"""Moved to :mod:`mechgym.integrations.rllib` (kept so that old imports work)."""

from mechgym.integrations.rllib import *  # noqa: F403
from mechgym.integrations.rllib import __all__  # noqa: F401

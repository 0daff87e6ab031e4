"""Event sourcing on a tidelog log (contract in progress)."""
from ._domain import *  # noqa: F401,F403

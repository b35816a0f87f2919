"""Interactive use from notebooks and scripts: ``knray.local()`` sessions, tables and plots."""

from knray.interactive.history import History
from knray.interactive.rows import Rows
from knray.interactive.session import Local, local

__all__ = ["History", "Local", "Rows", "local"]

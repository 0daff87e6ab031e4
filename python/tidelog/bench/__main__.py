"""``python -m tidelog.bench``: the same as ``tidelog bench``."""
import sys

from .cli import standalone

sys.exit(standalone())

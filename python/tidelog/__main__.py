"""``python -m tidelog``: the ``tidelog`` command."""
import sys

from .cli import main

sys.exit(main())

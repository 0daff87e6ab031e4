"""``python -m tidelog.cli``: the ``tidelog`` command."""
import sys

from . import main

sys.exit(main())

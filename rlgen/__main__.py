"""``python -m rlgen``: the same as the ``rlgen`` console script (and ``python -m rlgen.cli``)."""

import sys

from rlgen.cli import main

sys.exit(main())

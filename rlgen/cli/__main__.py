"""``python -m rlgen.cli``: the same as the ``rlgen`` console script."""

import sys

from rlgen.cli import main

sys.exit(main())

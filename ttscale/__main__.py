"""``python -m ttscale`` is the ``ttscale`` command."""

import sys

from ttscale.cli import main

sys.exit(main())

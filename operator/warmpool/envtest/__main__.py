"""``python -m warmpool.envtest``: see :mod:`warmpool.envtest.cli`."""

import sys

from warmpool.envtest.cli import main

sys.exit(main(sys.argv[1:]))

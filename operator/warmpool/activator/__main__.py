"""``python -m warmpool.activator`` (same as ``warmpool activator``)."""

import sys

from warmpool.activator.cli import main

sys.exit(main(sys.argv[1:]))

"""``python -m warmpool.warmup``: the same program as ``warmpool warmup``."""

import sys

from warmpool.warmup.cli import main

sys.exit(main())

"""Root pytest configuration."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/ is not a package on sys.path by default; `support` is shared by every tier.
sys.path.insert(0, str(Path(__file__).resolve().parent))

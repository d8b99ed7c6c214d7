"""warmpool.render is pure: importing it loads no Kubernetes client, no kopf, no HTTP stack."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("kopf", "kubernetes", "kubernetes_asyncio", "aiohttp", "tritonclient", "obstore")


def test_render_imports_no_client() -> None:
    code = (
        "import sys, warmpool.render\n"
        f"loaded = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""

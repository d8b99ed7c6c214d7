"""warmpool.prefetch: fetch model weights into a verified node-local cache, publish atomically.

Public API (the pre-pull DaemonSet and the operator reuse it)::

    from warmpool.prefetch import PrefetchConfig, prefetch, cache_key
    config = PrefetchConfig(uri="s3://models/llama", cache_dir=Path("/var/cache/warmpool"))
    result = prefetch(config)
    result.key, result.model_dir, result.cache_hit
"""

from __future__ import annotations

from warmpool.prefetch.api import PrefetchResult, prefetch, prefetch_async
from warmpool.prefetch.cache import cache_key
from warmpool.prefetch.errors import PrefetchError
from warmpool.prefetch.model import PrefetchConfig

__all__ = [
    "PrefetchConfig",
    "PrefetchError",
    "PrefetchResult",
    "cache_key",
    "prefetch",
    "prefetch_async",
]

"""Model sources: pick one by the URI's scheme."""

from __future__ import annotations

from warmpool.prefetch.model import PrefetchConfig
from warmpool.prefetch.sources.base import Source
from warmpool.prefetch.uris import parse_uri


def open_source(config: PrefetchConfig) -> Source:
    """The source for ``config.uri`` (credentials from the environment, never logged)."""
    uri = parse_uri(config.uri)
    if uri.scheme == "s3":
        from warmpool.prefetch.sources.objectstore import s3_source

        return s3_source(uri, config)
    if uri.scheme == "gs":
        from warmpool.prefetch.sources.objectstore import gcs_source

        return gcs_source(uri, config)
    if uri.scheme == "file":
        from warmpool.prefetch.sources.objectstore import local_source

        return local_source(uri)
    if uri.scheme == "hf":
        # Imported only here: huggingface_hub is slow to import and only hub pools need it.
        from warmpool.prefetch.sources.hf import HubSource

        return HubSource(uri, config.revision, config.concurrency)
    from warmpool.prefetch.sources.http import HttpSource

    return HttpSource(config.uri, config.concurrency)


__all__ = ["Source", "open_source"]

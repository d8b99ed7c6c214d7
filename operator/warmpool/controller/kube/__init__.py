"""Kubernetes plumbing: the async client, the watch cache, server-side apply that writes only
what differs, and Events. Knows Kubernetes, not pools' semantics."""

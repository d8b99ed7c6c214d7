"""warmpool: a Kubernetes operator that ends cold starts of GPU inference."""

__version__ = "0.1.0"

"""warmpool.activator."""

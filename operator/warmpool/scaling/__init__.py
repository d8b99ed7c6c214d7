"""warmpool.scaling."""

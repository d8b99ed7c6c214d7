"""warmpool.controller."""

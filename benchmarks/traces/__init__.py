"""Request traces for the autoscaling benchmark (benchmarks/autoscale.py)."""

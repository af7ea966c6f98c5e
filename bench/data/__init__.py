"""Datasets for the benchmark: synthetic generators, real-format loaders and the on-disk cache."""

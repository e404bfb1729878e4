"""Benchmarks for taskrun, run with `make bench`."""

"""Benchmark harness for the INDI server: our indiserver against the reference C++ indiserver and
indipyserver, on the same driver and the same clients. Run ``python bench/run.py --help``."""

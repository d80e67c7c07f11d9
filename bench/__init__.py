"""Benchmarks: ratios measured side by side in one process run, and the soak.

Every benchmark is a module run as `python -m bench.NAME`; it prints exactly one
JSON line on stdout (progress goes to stderr). `python -m bench.run_all` runs them
all and rewrites BENCHMARKS.md.
"""

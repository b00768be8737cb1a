"""Benchmarks: ``python -m bench.<name>``. Each prints a table and writes bench/results/<name>.json.

They are measurements, never pass/fail tests (see /work/shared/design/BENCHMARKS.md).
"""

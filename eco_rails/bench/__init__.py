"""Benchmarks (``eco-rails bench``): classifier backends, rail overhead, provider throughput, cold start, fit time.

Each section interleaves the variants it compares and reports medians, 95th percentiles and paired ratios;
see :mod:`eco_rails.bench.stats`. Benchmarks are not tests: the test suite only checks that
``eco-rails bench --quick`` runs and writes a valid report.
"""

from eco_rails.bench.report import BenchReport, Ratios, markdown_table
from eco_rails.bench.runner import SECTIONS, BenchOptions, run_bench

__all__ = ["BenchOptions", "BenchReport", "Ratios", "SECTIONS", "markdown_table", "run_bench"]

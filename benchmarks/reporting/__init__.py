"""The parts of benchmarks/report.py: data, comparisons, sections, charts."""

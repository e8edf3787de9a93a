"""``dreamcad-backend bench``: our standard inputs through the installed models -> table, JSON,
plots, and a comparison with an earlier run (inputs.py, metrics.py, runs.py, report.py)."""

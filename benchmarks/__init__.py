"""Benchmarks and development data builders, run as scripts (``python benchmarks/<name>.py``) or imported."""

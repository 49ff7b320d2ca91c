"""PixyProxy benchmarks: every performance figure, measured as ratios in one run.

Run them all with `.venv/bin/python -m bench` (see docs/benchmarks.md); `--smoke` for a short check.
"""

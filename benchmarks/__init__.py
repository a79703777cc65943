"""Side-by-side benchmarks of wfe against baselines and peers (DESIGN §10).

Run `python -m benchmarks` (table), `--json` (machine-readable), `--check` (exit 1 when a
target is missed). Every figure is a ratio measured in the same run, never an absolute time.
"""

"""vmemsim's benchmark suite: `make bench` (or `.venv/bin/python bench/run.py --quick`).

See docs/performance.md for what each number means and the latest results on this machine.
"""

PY ?= .venv/bin/python

.PHONY: bench bench-quick

# The full benchmark: writes docs/benchmarks.md, docs/benchmarks/*.png and bench/results.json.
bench:
	$(PY) -m moodstream.cli bench

# Under 2 minutes; the last line is one JSON object with speedup_vs_paper_loop.
bench-quick:
	$(PY) -m moodstream.cli bench --quick --json

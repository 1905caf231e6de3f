"""Benchmarks: `moodstream bench` (bench.cli) and the per-part scripts it builds on."""

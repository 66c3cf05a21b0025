"""The connector's throughput / CPU / memory benchmark (`make bench`, `python -m bench --quick`).

Not a test: nothing here is timed in CI. It runs the real connector process against the simulator
process and a real Kafka broker, prints one table of measured values against the issue's targets and
saves it as JSON under bench/results/ (git-ignored). See docs/benchmark.md.
"""

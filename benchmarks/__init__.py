"""Benchmarks of the one-extra-token claim; run them as `python -m benchmarks.<script>` (see docs/benchmarks.md)."""

"""Benchmarks (`make bench`). Each runs next to its reference in the same run; see RESULTS.md."""

"""daybreak's benchmark suite (`make bench`): see bench/suite.py and docs/PERFORMANCE.md."""

"""The benchmark suite: the standard model zoo and side-by-side runs."""

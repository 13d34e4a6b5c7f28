"""Shared pytest set-up: the helper modules live in ``tests/support`` (importable as ``support``
through ``pythonpath`` in pyproject.toml), and every test directory mirrors the package tree."""

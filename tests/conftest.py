"""Shared pytest set-up: the helper modules live in ``tests/support`` (importable as ``support``
through ``pythonpath`` in pyproject.toml), and every test directory mirrors the package tree.

The suite runs on pytest-xdist's workers (``-n auto --dist loadgroup`` in pyproject.toml). Tests
that share one costly resource are kept on one worker, so that it is built once: the Ray
cluster tests (one Ray instance at a time) and the modules that use the session's warm compile
cache (``sl.compile()`` into a cache of its own)."""

import pytest

from support.compile_cache import warm_cache


def _shared_resource(item: pytest.Item) -> str | None:
    if item.path.parent.name == "cluster":
        return "ray"
    if getattr(item.module, "warm_cache", None) is warm_cache:
        return "warm-cache"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = _shared_resource(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))

"""Measurement probes for the bench scripts, so that ``bench/`` needs no runtime internals.

A probe reproduces one condition of a real step in isolation: a buffer allocated the way a
Plan's weights are (``weight_like_buffer``), and a compiled function called the way
``Session.step`` calls its kernel, without Numba's type dispatch (``direct_call``).
``shares_products`` tells the bench whether a two-thread session has work to share, and
``code_paths`` which host CPU features chose the kernels' code paths. ``panel_matrix`` and
``panel_product`` run the kernels' matrix product alone, ``stored_products`` gives the shapes of
a model's products and ``pool_block_rows`` the rows per block of a pool
(``bench/product_ceiling.py``); ``pool_splitting_from`` makes a pool split its steps over
threads from a given number of streams, ``threaded_rows`` the pool's own threshold
(``bench/pool_split.py``). This module
is the one place where the tools reach past the runtime's public API; if the runtime moves these
helpers, only the imports below change.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numba import njit, typeof

from .. import Model
from ..helper import worth_a_helper
from ..kernels import layout as L
from ..kernels.config import entry_point
from ..kernels.simd import code_paths, panel_acc, to_pairs, to_panels
from ..kernels.streams import block_rows
from ..plan import aligned_bytes, to_bf16_bits
from ..pool import threaded_rows


__all__ = ["code_paths", "direct_call", "panel_matrix", "panel_product", "pool_block_rows", "pool_splitting_from",
           "shares_products", "stored_products", "threaded_rows", "weight_like_buffer"]


def weight_like_buffer(nbytes: int) -> np.ndarray:
    """A float32 buffer of about ``nbytes`` (at least 16 values), filled with ones, aligned and
    page-advised like a Plan's weights."""
    a = aligned_bytes(max(nbytes // 4, 16) * 4).view(np.float32)
    a[:] = 1.0
    return a


def direct_call(dispatcher, *example_args) -> Callable:
    """The compiled overload of the ``@njit`` function ``dispatcher`` for the types of
    ``example_args``, callable without type dispatch (callers must pass those types exactly)."""
    return entry_point(dispatcher, tuple(typeof(a) for a in example_args))


def shares_products(model: Model) -> bool:
    """True when a step of ``model`` has products large enough for ``session(threads=2)`` to split."""
    return worth_a_helper(model.plan)


def panel_matrix(W: np.ndarray, weights: str = "float") -> np.ndarray:
    """The (K, G) matrix ``W`` stored as the kernels store weights of format ``weights``
    ("float", or "bf16dot": bf16 pairs of rows) panel-major, for ``panel_product``; G must be a
    multiple of 16."""
    K, G = W.shape
    if weights == "bf16dot":
        pairs = to_pairs(to_bf16_bits(W))
        return to_panels(pairs, 16).reshape(pairs.shape)
    if weights != "float":
        raise ValueError(f"weights: expected 'float' or 'bf16dot', got {weights!r}")
    return to_panels(np.ascontiguousarray(W, dtype=np.float32), 16).reshape(K, G)


@njit(nogil=True, cache=True)
def panel_product(W, X, Z):
    """Z += X @ W through the kernels' product, for a ``panel_matrix`` W and one row (1-D X, Z) or
    C-contiguous rows (float32 X and Z for bf16dot W, whose product rounds X to bf16)."""
    panel_acc(W, X, Z)


def pool_splitting_from(model: Model, capacity: int, threads: int, rows: int):
    """A SessionPool of ``model`` whose steps of ``rows`` streams or more split over its
    ``threads`` (a pool's own threshold is ``pool.threaded_rows``)."""
    pool = model.pool(capacity, threads=threads)
    pool._split_rows = rows
    return pool


def pool_block_rows(model: Model, streams: int) -> int:
    """Streams per block of a pool of ``streams`` slots of ``model`` (each block's products run
    over that many rows)."""
    return block_rows(streams, model.plan.weight_bytes)


def stored_products(model: Model) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(K, G) of every stored matrix a step of ``model`` multiplies by, G padded as stored: the
    input products of its rows (projections, Dense), and the recurrent products."""
    rows = model.plan.rows
    def shapes(c):
        return [(int(r[c + L.M_ROWS]), int(r[c + L.M_COLS])) for r in rows if r[c + L.M_ROWS] > 0]
    return shapes(L.C_WX), shapes(L.C_WR)

"""Ahead-of-time compile: fill the kernel cache for every entry point a model can use.

``sl.compile()`` (and ``streamlstm compile``) runs each entry point once on small networks
whose plans need every kind set the kernels are compiled for (``rows.kind_set``: the core
recurrent kinds alone, and with the front-end kinds): ``Session.step`` and ``Session.run``
with one and two threads, ``Model.run``, ``SessionPool.step`` on one thread and split over
threads. The compiled code
lands in the kernel cache (``kernels/cache.py``), so a later process of any model with the same
dtype and weight format loads it instead of compiling. See docs/DEPLOYMENT.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from .kernels.cache import LOCATION
from .kernels.layout import WEIGHT_FORMATS as _FORMAT_CODES
from .model import Model
from .network import GRU, LSTM, RNN, Activation, Conv1d, Dense, LayerNorm, Network
from .pool import threaded_rows

WEIGHT_FORMATS = tuple(_FORMAT_CODES)
DTYPES = ("float32", "float64")


class Compiled(NamedTuple):
    """What ``compile`` built: (dtype, weights) pairs, the cache directory (None: no cache,
    nothing was kept), whether it took writes, and the seconds taken."""

    kinds: tuple[tuple[str, str], ...]
    cache_dir: Path | None
    cache_writable: bool
    seconds: float


def _names(value: str | Sequence[str], known: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    bad = [v for v in items if v not in known]
    if bad or not items:
        raise ValueError(f"{what}: expected some of {', '.join(known)}, got {', '.join(map(repr, items)) or 'none'}")
    return items


def coverage_network(seed: int = 0) -> Network:
    """A small network with one layer of every core kind (its plan needs the core kind set)."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return rng.uniform(-0.5, 0.5, size=shape)

    I, H = 8, 16
    return Network([
        LSTM(W=w(1, 4 * H, I), R=w(1, 4 * H, H), Wb=w(1, 4 * H), Rb=w(1, 4 * H)),
        GRU(W=w(1, 3 * H, H), R=w(1, 3 * H, H), Wb=w(1, 3 * H), Rb=w(1, 3 * H), linear_before_reset=True),
        RNN(W=w(1, H, H), R=w(1, H, H), Wb=w(1, H), Rb=w(1, H)),
        Dense(W=w(H, H), b=w(H), activation="Relu"),
        Activation("Sigmoid"),
    ], name="aot-coverage")


def front_end_network(seed: int = 1) -> Network:
    """A small front end (a convolution within the frame, a LayerNorm) before an LSTM: its plan
    needs the kernels of every kind."""
    rng = np.random.default_rng(seed)
    L, C, H = 8, 4, 8
    return Network([
        Conv1d(rng.uniform(-0.5, 0.5, (C, 1, 3)), length=L, padding=(1, 1)),
        LayerNorm(np.ones(C * L)),
        LSTM(W=rng.uniform(-0.5, 0.5, (1, 4 * H, C * L)), R=rng.uniform(-0.5, 0.5, (1, 4 * H, H))),
    ], name="aot-front-end")


COVERAGE = (coverage_network, front_end_network)


def _exercise(model: Model) -> None:
    dt = model.dtype
    X = np.zeros((3, model.input_size), dt)
    model.run(X)
    for threads in (1, 2):
        s = model.session(threads=threads)
        try:
            s.step(X[0])
            s.run(X)
        finally:
            s.close()
    pool = model.pool(2)
    pool.step([pool.open(), pool.open()], X[:2])
    n = threaded_rows(model.plan)
    pool = model.pool(n, threads=2)
    ids = [pool.open() for _ in range(n)]
    pool.step(ids, np.zeros((len(ids), model.input_size), dt))


def compile(dtype: str | Sequence[str] = "float32", weights: str | Sequence[str] = "float") -> Compiled:
    """Compile, or load from the cache, every kernel entry point for each ``dtype`` and
    ``weights`` format (compressed formats need float32; other pairs are skipped).

    Run it where the cache will be used (same CPU model, Python, Numba): at an image build,
    with ``NUMBA_CACHE_DIR`` set to the directory to ship. Compiles are announced on stderr.
    """
    dtypes = _names(dtype, DTYPES, "dtype")
    formats = _names(weights, WEIGHT_FORMATS, "weights")
    kinds = tuple((d, f) for d in dtypes for f in formats if f == "float" or d == "float32")
    if not kinds:
        raise ValueError(f"weights={formats} need dtype='float32' (got dtype={dtypes})")
    t0 = time.perf_counter()
    for d, f in kinds:
        for network in COVERAGE:
            _exercise(Model(network(), dtype=d, weights=f))
    return Compiled(kinds, LOCATION.path, LOCATION.writable, time.perf_counter() - t0)

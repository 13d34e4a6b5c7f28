"""pytest-benchmark suite for the kernels: gemv, the LSTM cell update, one zoo step, a chunk of 100 frames.

Not part of the default test run (testpaths = tests). Run it with:

    python -m pytest bench/test_kernels_bench.py --benchmark-only

(add ``--benchmark-json out.json`` to keep the numbers, ``-k kws`` to pick a model).
"""

from __future__ import annotations

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.kernels.lstm import fused_gates as lstm_fused_fast
from streamlstm.kernels.simd import panel_acc as gemv_acc
from streamlstm.kernels.simd import to_panels
from streamlstm.zoo import NAMES, zoo_network

RNG = np.random.default_rng(0)
GEMV_SHAPES = [(64, 256), (256, 1024), (1024, 4096)]   # (K inputs, G gate outputs)
CELL_SIZES = [64, 256, 1024]
CHUNK_T = 100


@pytest.fixture(scope="module", params=NAMES)
def zoo_model(request):
    return request.param, sl.Model(zoo_network(request.param))


@pytest.mark.parametrize("K,G", GEMV_SHAPES, ids=[f"K{k}xG{g}" for k, g in GEMV_SHAPES])
def test_gemv(benchmark, K, G):
    Wt = RNG.uniform(-0.1, 0.1, (K, G)).astype(np.float32)
    stored = to_panels(Wt, 16).reshape(K, G)  # the layout the kernels read
    x = RNG.standard_normal(K).astype(np.float32)
    y = np.zeros(G, np.float32)
    gemv_acc(stored, x, y)  # compile outside the timing
    benchmark(gemv_acc, stored, x, y)
    ref = np.zeros(G, np.float32)
    ref += x @ Wt
    y[:] = 0
    gemv_acc(stored, x, y)
    np.testing.assert_allclose(y, ref, atol=1e-4)


@pytest.mark.parametrize("H", CELL_SIZES, ids=[f"H{h}" for h in CELL_SIZES])
def test_lstm_cell(benchmark, H):
    Hp = -(-H // 16) * 16
    z = RNG.standard_normal(4 * Hp).astype(np.float32)
    c = np.zeros(H, np.float32)
    h = np.zeros(H, np.float32)
    lstm_fused_fast(z, c, h, H, Hp)
    benchmark(lstm_fused_fast, z, c, h, H, Hp)
    assert np.all(np.abs(h) <= 1.0)


def test_zoo_step(benchmark, zoo_model):
    name, model = zoo_model
    s = model.session()
    x = RNG.standard_normal(model.input_size).astype(np.float32)
    out = np.empty(model.output_size, np.float32)
    s.step(x, out=out)
    benchmark.extra_info["model"] = name
    benchmark(s.step, x, out)
    assert np.all(np.isfinite(out))


def test_zoo_chunk100(benchmark, zoo_model):
    name, model = zoo_model
    s = model.session()
    X = RNG.standard_normal((CHUNK_T, model.input_size)).astype(np.float32)
    s.run(X)
    benchmark.extra_info.update(model=name, frames=CHUNK_T)
    Y = benchmark(s.run, X)
    assert Y.shape == (CHUNK_T, model.output_size)

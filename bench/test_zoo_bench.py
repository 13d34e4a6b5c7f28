"""pytest-benchmark suite on the public API: one zoo step and a chunk of 100 frames per model.

Not part of the default test run (testpaths = tests). Run it with:

    python -m pytest bench/test_zoo_bench.py --benchmark-only

(add ``--benchmark-json out.json`` to keep the numbers, ``-k kws`` to pick a model).
"""

from __future__ import annotations

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.tools.benchmark import frames_for
from streamlstm.tools.zoo import NAMES, zoo_network

RNG = np.random.default_rng(0)
CHUNK_T = 100


@pytest.fixture(scope="module", params=NAMES)
def zoo_model(request):
    return request.param, sl.Model(zoo_network(request.param))


def test_zoo_step(benchmark, zoo_model):
    name, model = zoo_model
    s = model.session()
    x = frames_for(model, RNG, 1)[0]
    out = np.empty(model.output_size, np.float32)
    s.step(x, out=out)
    benchmark.extra_info["model"] = name
    benchmark(s.step, x, out)
    assert np.all(np.isfinite(out))


def test_zoo_chunk100(benchmark, zoo_model):
    name, model = zoo_model
    s = model.session()
    X = frames_for(model, RNG, CHUNK_T)
    s.run(X)
    benchmark.extra_info.update(model=name, frames=CHUNK_T)
    Y = benchmark(s.run, X)
    assert Y.shape == (CHUNK_T, model.output_size)

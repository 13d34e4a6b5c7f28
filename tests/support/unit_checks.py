"""One layer unit alone through every schedule, against the float64 reference equations.

``check_unit(layer, input_size)`` builds a one-layer Network and, for each dtype and weight
format, checks ``Model.run`` against ``support.reference.reference_run``; when the unit
streams it also checks that single steps, chunks and pool streams give exactly the same
numbers as that run (one arithmetic for the three schedules). Compressed formats are checked
against the reference run on weights quantised here, independently of the Plan; their
schedules are not run again per layer kind (each format compiles kernels of its own): a kind's
code is the same for every format, its schedules are checked in float, and each format's
products give the same bits for one row and many in ``tests/kernels/test_simd.py``, its
schedules the same bits in ``tests/kernels/test_compressed.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import streamlstm as sl
from support.reference import reference_run

TOL = {"float64": 1e-12, "float32": 1e-4}
COMPRESSED_TOL = 1e-4
FORMATS = (("float64", "float"), ("float32", "float"), ("float32", "bf16"), ("float32", "int8"),
           ("float32", "bf16dot"), ("float32", "int8dot"))


def bf16(a: np.ndarray) -> np.ndarray:
    """Round to the nearest bfloat16 (ties to even), back as float64."""
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def int8_per_input(W: np.ndarray) -> np.ndarray:
    """W (outputs, inputs): one scale per input column, codes in [-127, 127]."""
    scale = np.abs(W).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    return np.clip(np.rint(W / scale), -127, 127) * scale


def int8_per_output(W: np.ndarray) -> np.ndarray:
    """W (outputs, inputs): one scale per output row, codes in [-127, 127]; the scales are
    stored as float32."""
    scale = np.abs(W).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    return np.clip(np.rint(W / scale[:, None]), -127, 127) * scale.astype(np.float32).astype(np.float64)[:, None]


INT8_INPUT_BLOCK = 256  # inputs per scale of a product's int8 inputs (weights="int8dot")


def int8_blocks(x: np.ndarray) -> np.ndarray:
    """A product's input vector as ``weights="int8dot"`` quantises it, in float32 as the kernel
    does: per block of ``INT8_INPUT_BLOCK`` inputs, m = max |x|, q = roundeven(x * (127 / m)),
    value q * (m / 127)."""
    x = np.asarray(x, np.float64).astype(np.float32)
    out = np.zeros(x.shape)
    for k0 in range(0, x.shape[-1], INT8_INPUT_BLOCK):
        b = x[..., k0:k0 + INT8_INPUT_BLOCK]
        m = np.abs(b).max(axis=-1, keepdims=True)
        inv = np.divide(np.float32(127), m, out=np.zeros_like(m), where=m > 0)
        q = np.clip(np.rint(b * inv), -127, 127)
        out[..., k0:k0 + INT8_INPUT_BLOCK] = q * (m / np.float32(127)).astype(np.float64)
    return out


QUANTISE = {"bf16": bf16, "int8": int8_per_input, "bf16dot": bf16, "int8dot": int8_per_output}
# the formats whose products also round or quantise their inputs (``reference_run(inputs=...)``)
PRODUCT_INPUTS = {"bf16dot": bf16, "int8dot": int8_blocks}


def quantised(layer, fmt: str):
    """``layer`` with the matrices a Plan stores in ``fmt`` quantised the way it stores them:
    input matrices, recurrent matrices (a GRU's z and r blocks only) and Dense matrices."""
    q = QUANTISE.get(fmt)
    if isinstance(layer, (sl.Conv1d, sl.TimeConv1d)) and q is not None:
        Co, Cg, k = layer.W.shape
        Mq = q(layer.window_matrix().T).T       # (C_in * k, C_out), one scale per stored row
        W = np.zeros_like(layer.W)
        per_group = Co // layer.groups
        for o in range(Co):
            g = o // per_group
            W[o] = Mq[g * Cg * k:(g + 1) * Cg * k, o].reshape(Cg, k)
        return dataclasses.replace(layer, W=W)
    if fmt == "float" or not isinstance(layer, (sl.Dense, sl.LSTM, sl.GRU, sl.RNN)):
        return layer
    if isinstance(layer, sl.Dense):
        return dataclasses.replace(layer, W=q(layer.W))
    W = np.stack([q(w) for w in layer.W])
    R = layer.R.copy()
    rows = 2 * layer.hidden_size if isinstance(layer, sl.GRU) else R.shape[1]
    for d in range(R.shape[0]):
        R[d, :rows] = q(R[d, :rows])
    return dataclasses.replace(layer, W=W, R=R)


def check_unit(layer, input_size: int, *, frames: int = 7, streams: int = 3, formats=FORMATS, seed: int = 0,
               X: np.ndarray | None = None, sources=None, extra: tuple = ()):
    """Run the checks of the module docstring; returns the number of (dtype, format) cases.

    ``extra`` layers run before ``layer`` (a graph with ``sources``); ``X`` replaces the
    random frames (it must stay valid when scaled by the pool's factors)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(frames, input_size)) if X is None else np.asarray(X, dtype=np.float64)
    for dtype, fmt in formats:
        net = sl.Network([*extra, layer], input_size=input_size, sources=sources)
        want, _ = reference_run(sl.Network([*(quantised(l, fmt) for l in extra), quantised(layer, fmt)],
                                           input_size=input_size, sources=sources), X,
                                inputs=PRODUCT_INPUTS.get(fmt))
        model = sl.Model(net, dtype, weights=fmt)
        Xd = X.astype(dtype)
        got = model.run(Xd)
        tol = TOL[dtype] if fmt == "float" else COMPRESSED_TOL
        err = np.abs(got - want).max()
        assert err <= tol, f"{layer.label} {dtype}/{fmt}: run differs from the reference by {err:.3g}"
        if not model.streamable or fmt != "float":
            continue
        s = model.session()
        np.testing.assert_array_equal(np.array([s.step(x) for x in Xd]), got, f"{dtype}/{fmt}: steps")
        s.reset()
        np.testing.assert_array_equal(np.concatenate([s.run(Xd[:3]), s.run(Xd[3:])]), got,
                                      f"{dtype}/{fmt}: chunks")
        pool = model.pool(streams + 1)
        ids = [pool.open() for _ in range(streams)]
        scales = np.linspace(1.0, -0.5, streams).astype(dtype)
        Y = np.stack([pool.step(ids, np.stack([x * a for a in scales])) for x in Xd], axis=1)
        for k, a in enumerate(scales):
            np.testing.assert_array_equal(Y[k], model.run(Xd * a), f"{dtype}/{fmt}: pool stream {k}")
    return len(formats)


def uniform(rng: np.random.Generator, *shape, fan: int) -> np.ndarray:
    return rng.uniform(-1, 1, size=shape) / np.sqrt(fan)

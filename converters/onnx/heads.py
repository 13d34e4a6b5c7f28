"""Heads and activations on the data path: Gemm, MatMul(+Add), Conv k=1, elementwise
activations, Softmax, constant affine ops, and merging the two directions of a layer.

Each handler registers itself in ``ops.STREAM_OPS``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from streamlstm.errors import ConversionError, NetworkError
from streamlstm.network import Activation, Dense, act

from .fold import axes_param
from .ops import stream_op
from .temporal import PaddedStream, time_conv
from .stream import ELEMENTWISE, Ax, Stream, finish, fold_unit_d, n_axis
from .walk import HINT, Walker


@stream_op(*ELEMENTWISE)
def _elementwise(walk: Walker, node, i, ins, a, w):
    s = walk.norm(ins[0])
    try:
        at = ELEMENTWISE[node.op_type](a)
    except NetworkError as e:
        raise ConversionError(f"{w}: {e}") from None
    if s.blocks:
        return [replace(s, post=s.post + (at,), fresh_dense=False, state="")]
    layer = Activation(at, name=node.name or f"{node.op_type}_{i}")
    return [replace(s, chain=s.chain + (layer,), fresh_dense=False, state="")]


@stream_op("Softmax")
def _op_Softmax(walk: Walker, node, i, ins, a, w):
    s = walk.plain(ins[0], w)
    fi = s.feature_index()
    axis = a.get("axis", 1 if walk.g.opset < 13 else -1) % s.rank
    if walk.g.opset < 13:
        ok = all(x.kind == "N" for x in s.axes[:axis]) and all(
            x.kind == "F" or x.unit for x in s.axes[axis:])
    else:
        ok = axis == fi
    if not ok:
        raise ConversionError(f"{w}: Softmax over axis {axis} is not over the feature axis")
    layer = Activation(act("Softmax"), name=node.name or f"Softmax_{i}")
    return [replace(s, chain=s.chain + (layer,), fresh_dense=False, state="")]


def _dense_out(s: Stream, k: int, W, b, node, i) -> Stream:
    layer = Dense(W, b, name=node.name or f"{node.op_type}_{i}")
    axes = list(s.axes)
    axes[k] = Ax("F", int(W.shape[0]))
    return Stream(tuple(axes), chain=s.chain + (layer,), fresh_dense=True)


@stream_op("Gemm")
def _op_Gemm(walk: Walker, node, i, ins, a, w):
    if not isinstance(ins[0], Stream) or isinstance(ins[1], Stream) or (
            len(ins) > 2 and isinstance(ins[2], Stream)):
        raise ConversionError(f"{w}: only input A of Gemm may come from the data")
    s = ins[0]
    if s.rank != 2:
        raise ConversionError(f"{w}: Gemm input has rank {s.rank}; expected 2")
    Bm = np.asarray(walk.const(node, 1, "B", w), np.float64)
    W = (Bm if a.get("transB", 0) else Bm.T) * float(a.get("alpha", 1.0))
    fpos = 0 if a.get("transA", 0) else 1
    s = walk.plain(walk.feature(s, fpos, W.shape[1], w), w)
    b = None
    C = walk.const(node, 2, "C", w, required=False)
    if C is not None:
        c = np.asarray(C, np.float64) * float(a.get("beta", 1.0))
        if c.ndim == 2:
            if c.shape[0] != 1:
                raise ConversionError(f"{w}: C of shape {c.shape} varies along the frame axis")
            c = c[0]
        b = np.broadcast_to(c.reshape(-1), (W.shape[0],)).copy()
    out = _dense_out(s, fpos, W, b, node, i)
    frame = s.axes[1 - fpos]
    return [out.with_axes((frame, out.axes[fpos]))]


@stream_op("MatMul")
def _op_MatMul(walk: Walker, node, i, ins, a, w):
    A, B = ins[0], ins[1]
    if isinstance(A, Stream) and not isinstance(B, Stream):
        M = np.asarray(walk.const(node, 1, "B", w), np.float64)
        k = A.rank - 1
        W = _as_2d(M, w).T
    elif isinstance(B, Stream) and not isinstance(A, Stream):
        M = np.asarray(walk.const(node, 0, "A", w), np.float64)
        A, k, W = B, B.rank - 2, _as_2d(M, w)
        if A.rank < 2:
            raise ConversionError(f"{w}: constant @ vector is not supported")
    else:
        raise ConversionError(f"{w}: multiplies two data tensors")
    s = walk.plain(walk.feature(A, k, W.shape[1], w), w)
    return [_dense_out(s, k, W, None, node, i)]


@stream_op("Conv")
def _op_Conv(walk: Walker, node, i, ins, a, w):
    if any(isinstance(v, Stream) for v in ins[1:]):
        raise ConversionError(f"{w}: Conv weights must be constant")
    Wc = np.asarray(walk.const(node, 1, "W", w), np.float64)
    s = ins[0]
    if Wc.ndim == 3 and (Wc.shape[2] > 1 or any(a.get("pads", [])) or isinstance(s, PaddedStream)
                         or a.get("group", 1) != 1):
        return [time_conv(walk, node, i, ins, a, w, Wc)]
    if Wc.ndim != s.rank or any(k != 1 for k in Wc.shape[2:]) or a.get("group", 1) != 1:
        raise ConversionError(f"{w}: only Conv with kernel size 1 and group 1 (a Dense per frame) "
                              f"is supported; kernel {list(Wc.shape[2:])}, group {a.get('group', 1)}" + HINT)
    if any(p != 0 for p in a.get("pads", [])):
        raise ConversionError(f"{w}: Conv with padding adds frames; not supported")
    s = walk.plain(walk.feature(s, 1, Wc.shape[1], w), w)
    strides = a.get("strides", [1] * (s.rank - 2))
    for st, ax in zip(strides, s.axes[2:]):
        if st != 1 and not ax.unit:
            raise ConversionError(f"{w}: Conv stride {st} drops frames; not supported")
    Bv = walk.const(node, 2, "B", w, required=False)
    b = None if Bv is None else np.asarray(Bv, np.float64).reshape(-1)
    return [_dense_out(s, 1, Wc.reshape(Wc.shape[0], -1), b, node, i)]


def _vector(s: Stream, c, w: str):
    c = np.asarray(c, np.float64)
    if c.size == 1:
        return float(c.reshape(-1)[0])
    while c.ndim > s.rank and c.shape[0] == 1:
        c = c[0]
    if c.ndim > s.rank:
        raise ConversionError(f"{w}: constant of shape {c.shape} broadcasts beyond the data")
    cd = (1,) * (s.rank - c.ndim) + c.shape
    fi = s.feature_index()
    for k, d in enumerate(cd):
        if k != fi and d != 1:
            raise ConversionError(f"{w}: constant of shape {c.shape} varies along a frame axis")
    width = s.axes[fi].size
    if c.size != width:
        raise ConversionError(f"{w}: constant has {c.size} values for {width} features")
    return c.reshape(-1)


def _affine(s: Stream, scale, shift, node, i, w) -> Stream:
    """s * scale + shift (scalars or per-feature vectors), folded into a fresh Dense if any."""
    name = node.name or f"{node.op_type}_{i}"
    if s.fresh_dense and isinstance(s.chain[-1], Dense):
        d = s.chain[-1]
        scale_v = np.asarray(scale, np.float64)
        Wn = d.W * (scale_v[:, None] if scale_v.ndim else scale_v)
        bn = (d.b if d.b is not None else 0.0) * scale_v + shift
        bn = np.broadcast_to(bn, (Wn.shape[0],)).copy()
        layer = Dense(Wn, bn, d.activation, name=d.name)
        return replace(s, chain=s.chain[:-1] + (layer,), fresh_dense=True, state="")
    if np.ndim(scale) == 0 and np.ndim(shift) == 0:
        layer = Activation(act("Affine", float(scale), float(shift)), name=name)
    else:
        n = s.axes[s.feature_index()].size
        sv = np.broadcast_to(np.asarray(scale, np.float64), (n,))
        layer = Dense(np.diag(sv), np.broadcast_to(np.asarray(shift, np.float64), (n,)).copy(),
                      name=name)
        return replace(s, chain=s.chain + (layer,), fresh_dense=True, state="")
    return replace(s, chain=s.chain + (layer,), fresh_dense=False, state="")


@stream_op("Add", "Sub", "Mul", "Div", "Sum", "Mean")
def _arith(walk: Walker, node, i, ins, a, w):
    op = node.op_type
    streams = [k for k, v in enumerate(ins) if isinstance(v, Stream)]
    if len(streams) == 2 and len(ins) == 2 and op in ("Add", "Mul", "Sum", "Mean"):
        return [_combine(walk, op, ins[0], ins[1], w)]
    if len(streams) != 1 or len(ins) != 2 or op in ("Sum", "Mean"):
        raise ConversionError(f"{w}: {op} of these inputs is not supported")
    k = streams[0]
    s = walk.settle(ins[k], w)
    c = walk.const(node, 1 - k, "the other operand", w)
    if op == "Mul" and s.combine == "sum" and np.size(c) == 1 and float(np.reshape(c, -1)[0]) == 0.5:
        return [replace(s, combine="ave")]
    if op == "Div" and k == 0 and s.combine == "sum" and np.size(c) == 1 and \
            float(np.reshape(c, -1)[0]) == 2.0:
        return [replace(s, combine="ave")]
    s = finish(s, w, walk.cache)
    v = _vector(s, c, w)
    if op == "Add":
        return [_affine(s, 1.0, v, node, i, w)]
    if op == "Sub":
        return [_affine(s, 1.0, -v, node, i, w) if k == 0 else
                _affine(s, -1.0, v, node, i, w)]
    if op == "Mul":
        return [_affine(s, v, 0.0, node, i, w)]
    if op == "Div" and k == 0:
        return [_affine(s, 1.0 / np.asarray(v), 0.0, node, i, w)]
    raise ConversionError(f"{w}: divides a constant by the data")


def _combine(walk: Walker, op, s1: Stream, s2: Stream, w: str) -> Stream:
    s1 = fold_unit_d(walk.settle(s1, w), w)
    s2 = fold_unit_d(walk.settle(s2, w), w)
    f1, f2 = s1.feature_index(), s2.feature_index()
    b1 = s1.axes[f1].blocks if f1 is not None else ()
    b2 = s2.axes[f2].blocks if f2 is not None else ()
    if (len(b1) != 1 or len(b2) != 1 or b1[0].src is not b2[0].src or b1[0].d == b2[0].d
            or s1.post or s2.post or s1.rank != s2.rank):
        raise ConversionError(f"{w}: {op} of two data tensors is supported only to merge the two "
                              "directions of one bidirectional layer")
    mode = {"Add": "sum", "Sum": "sum", "Mul": "mul", "Mean": "ave"}[op]
    axes = list(s1.axes)
    axes[f1] = replace(axes[f1], blocks=b1 + b2)
    return Stream(tuple(axes), combine=mode)


def _reduce(walk: Walker, node, i, ins, a, w, mode: str, opset_axes: int):
    s = walk.settle(ins[0], w)
    axes = axes_param(walk.folder, node, a, opset_axes)
    ds = [k for k, ax in enumerate(s.axes) if ax.kind == "D"]
    if axes is None or len(axes) != 1 or not ds or axes[0] % s.rank != ds[0] or \
            len(s.axes[ds[0]].blocks) != 2 or s.post:
        raise ConversionError(f"{w}: {node.op_type} is supported only over the direction axis of a "
                              "bidirectional output")
    k = ds[0]
    blocks = s.axes[k].blocks
    new = list(s.axes)
    fi = s.feature_index()
    new[fi] = replace(new[fi], blocks=blocks)
    if a.get("keepdims", 1):
        new[k] = n_axis(1)
    else:
        del new[k]
    return [Stream(tuple(new), combine=mode)]


@stream_op("ReduceSum")
def _op_ReduceSum(walk: Walker, node, i, ins, a, w):
    return _reduce(walk, node, i, ins, a, w, "sum", 13)


@stream_op("ReduceMean")
def _op_ReduceMean(walk: Walker, node, i, ins, a, w):
    return _reduce(walk, node, i, ins, a, w, "ave", 18)


def _as_2d(M: np.ndarray, w: str) -> np.ndarray:
    while M.ndim > 2 and M.shape[0] == 1:
        M = M[0]
    if M.ndim != 2:
        raise ConversionError(f"{w}: constant matrix of shape {M.shape}; expected 2-D")
    return M

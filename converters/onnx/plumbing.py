"""Plumbing ops on the data path: axis moves, reshapes, direction slicing/joining, shape arithmetic.

These handlers change where the frame, direction and feature axes of a ``Stream`` sit without
computing anything; Shape/Gather/Concat/Mul over stream shapes build ``ShapeVal`` targets for
Reshape (PyTorch's ``view(b * t, -1)``). Each handler registers itself in ``ops``'s tables.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from onnx import TensorProto

from streamlstm.errors import ConversionError

from .fold import axes_param, py_slice, slice_params, split_sizes
from .ops import shape_op, stream_op
from .stream import Ax, ShapeVal, Stream, feature_size, fold_unit_d, merge_features, n_axis
from .temporal import embedding, time_pad
from .walk import BIG, Walker


@stream_op("Pad")
def _op_Pad(walk: Walker, node, i, ins, a, w):
    return [time_pad(walk, node, i, ins, a, w)]


@stream_op("Identity")
def _op_Identity(walk: Walker, node, i, ins, a, w):
    return [ins[0]]


@stream_op("Dropout")
def _op_Dropout(walk: Walker, node, i, ins, a, w):
    return [ins[0], None]


@stream_op("Cast")
def _op_Cast(walk: Walker, node, i, ins, a, w):
    to = int(a["to"])
    floats = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)
    if (walk.float_type and to != walk.float_type) or to not in floats:
        own = TensorProto.DataType.Name(walk.float_type) if walk.float_type else "float type"
        raise ConversionError(f"{w}: casts the data to {TensorProto.DataType.Name(to)}; only a cast "
                              f"to the model's own {own} is supported")
    return [ins[0]]


@stream_op("Shape")
def _op_Shape(walk: Walker, node, i, ins, a, w):
    s = walk.norm(ins[0])
    start, end = a.get("start", 0), a.get("end", None)
    return [ShapeVal(tuple(s.axes[start:end]))]


@stream_op("Transpose")
def _op_Transpose(walk: Walker, node, i, ins, a, w):
    s = ins[0]
    perm = a.get("perm") or list(range(s.rank))[::-1]
    if sorted(perm) != list(range(s.rank)):
        raise ConversionError(f"{w}: perm {perm} does not fit rank {s.rank}")
    return [s.with_axes([s.axes[p] for p in perm])]


@stream_op("Unsqueeze")
def _op_Unsqueeze(walk: Walker, node, i, ins, a, w):
    s = ins[0]
    axes = axes_param(walk.folder, node, a, 13)
    if axes is None:
        raise ConversionError(f"{w}: Unsqueeze without axes")
    r = s.rank + len(axes)
    new = list(s.axes)
    for ax in sorted(x % r for x in axes):
        new.insert(ax, n_axis(1))
    return [s.with_axes(new)]


@stream_op("Squeeze")
def _op_Squeeze(walk: Walker, node, i, ins, a, w):
    s = walk.norm(ins[0])
    axes = axes_param(walk.folder, node, a, 13)
    if axes is None:
        axes = [k for k, ax in enumerate(s.axes)
                if (ax.kind in ("N", "?") and (ax.size == 1 or ax.role == "B"))
                or (ax.kind == "D" and len(ax.blocks) == 1)]
    axes = {x % s.rank for x in axes}
    new, fold = [], None
    for k, ax in enumerate(s.axes):
        if k not in axes:
            new.append(ax)
        elif ax.kind == "D":
            if len(ax.blocks) != 1:
                raise ConversionError(f"{w}: squeezes a direction axis of size {len(ax.blocks)}")
            fold = ax.blocks
        elif ax.kind == "F":
            raise ConversionError(f"{w}: squeezes the feature axis")
        elif ax.size not in (1, None):
            raise ConversionError(f"{w}: squeezes axis {k} of size {ax.size}")
    if fold is not None:
        fi = next(k for k, ax in enumerate(new) if ax.kind == "F")
        new[fi] = replace(new[fi], blocks=fold)
    return [s.with_axes(new)]


@stream_op("Reshape")
def _op_Reshape(walk: Walker, node, i, ins, a, w):
    s = ins[0]
    if not isinstance(s, Stream):
        raise ConversionError(f"{w}: reshapes to a shape computed from the data")
    if walk.g.opset < 5:
        shape = list(a["shape"])
    elif isinstance(ins[1], ShapeVal):
        shape = list(ins[1].dims)
    else:
        shape = [int(v) for v in np.asarray(walk.const(node, 1, "shape", w)).reshape(-1)]
    allowzero = a.get("allowzero", 0)
    entries = []
    for k, v in enumerate(shape):
        if isinstance(v, Ax):
            entries.append(walk.norm_ax(v))
        elif v == 0 and not allowzero:
            if k >= s.rank:
                raise ConversionError(f"{w}: shape entry 0 at position {k} beyond rank {s.rank}")
            entries.append(walk.norm_ax(s.axes[k]))
        elif v == -1:
            entries.append("infer")
        elif v <= 0:
            raise ConversionError(f"{w}: bad target dimension {v}")
        else:
            entries.append(int(v))
    return [reshape_stream(walk, s, entries, w)]


def reshape_stream(walk: Walker, s: Stream, entries: list, w: str) -> Stream:
    s = fold_unit_d(walk.settle(s, w), w)
    entries = [walk.norm_ax(e) if isinstance(e, Ax) else e for e in entries]
    nonunit = [ax for ax in s.axes if not ax.unit]
    seen = False
    for ax in nonunit:
        if ax.kind in ("F", "D"):
            seen = True
        elif seen:
            raise ConversionError(f"{w}: reshapes with a time axis after the feature; "
                                  "that mixes frames and features")
    feat = [ax for ax in s.axes if ax.kind in ("F", "D")]
    sizes = [feature_size(ax) for ax in feat]
    if None in sizes:
        raise ConversionError(f"{w}: reshapes a feature of unknown width")
    P = int(np.prod(sizes))
    tail, prod, j, got = [], 1, len(entries) - 1, False
    while j >= 0 and not (prod == P and got):
        e = entries[j]
        if isinstance(e, Ax):
            if e.kind in ("F", "D"):
                v = feature_size(e)
            elif e.unit:
                v = 1
            else:
                break
        elif e == "infer":
            if P % prod:
                raise ConversionError(f"{w}: target shape does not keep the feature ({P}) together")
            v = P // prod
        else:
            v = e
        tail.insert(0, v)
        prod *= v
        got = got or v != 1 or P == 1
        j -= 1
        if prod > P:
            break
    if prod != P:
        raise ConversionError(f"{w}: the target shape {entries} does not keep the feature axis "
                              f"(width {P}) apart from the time axis")
    want = [v for v in tail if v != 1] or [1]
    have = [ax for ax in feat if ax.kind == "F" or feature_size(ax) != 1]
    if len(want) == 1:
        fax = [merge_features(have, w)]
    elif want == [feature_size(ax) for ax in have]:
        fax = list(have)
    elif (len(want) == 2 and len(have) == 1 and have[0].blocks and s.combine == "concat"
          and want[0] == len(have[0].blocks)):
        fax = [Ax("D", want[0], blocks=have[0].blocks), Ax("F", want[1])]
    else:
        raise ConversionError(f"{w}: cannot reshape feature axes {sizes} into {want}")
    if P == 1:
        tail_axes = [n_axis(1)] * (len(tail) - 1) + fax
    else:
        q = list(fax)
        tail_axes = [q.pop(0) if v != 1 else n_axis(1) for v in tail]
    frames = [ax for ax in s.axes if ax.kind == "N"]
    fprod = None
    if all(ax.size is not None or ax.role == "B" for ax in frames):
        fprod = int(np.prod([ax.size if ax.size is not None else 1 for ax in frames]))
    pre = []
    for e in entries[:j + 1]:
        if isinstance(e, Ax):
            if e.kind in ("F", "D"):
                raise ConversionError(f"{w}: moves the feature into the frame dimensions")
            pre.append(n_axis(e.size, e.role, e.id))
        elif e == "infer":
            pre.append(n_axis(None))
        else:
            pre.append(n_axis(int(e)))
    known = [ax.size for ax in pre if ax.size is not None]
    if fprod is not None:
        kp = int(np.prod(known)) if known else 1
        inf = [k for k, ax in enumerate(pre) if ax.size is None]
        if inf and fprod % kp == 0:
            pre[inf[0]] = n_axis(fprod // kp)
        elif not inf and kp != fprod:
            raise ConversionError(f"{w}: frame dimensions {known} do not match the input's ({fprod})")
    in_frames = [ax for ax in frames if not ax.unit]
    big = [k for k, ax in enumerate(pre) if ax.size != 1]
    if len(in_frames) == 1 and len(big) == 1 and not pre[big[0]].role:
        src = in_frames[0]
        pre[big[0]] = n_axis(pre[big[0]].size, src.role, src.id)
    return s.with_axes(pre + tail_axes)


@stream_op("Flatten")
def _op_Flatten(walk: Walker, node, i, ins, a, w):
    s = fold_unit_d(walk.settle(ins[0], w), w)
    ax = a.get("axis", 1) % (s.rank + 1) if s.rank else 0
    left, right = s.axes[:ax], s.axes[ax:]
    if any(x.kind in ("F", "D") for x in left):
        raise ConversionError(f"{w}: Flatten(axis={ax}) splits the feature")
    if any(x.kind == "N" and not x.unit for x in right):
        raise ConversionError(f"{w}: Flatten(axis={ax}) merges the time axis into the feature")
    P = int(np.prod([feature_size(x) for x in right if x.kind in ("F", "D")]))
    sizes = [x.size for x in left]
    first = int(np.prod(sizes)) if None not in sizes else "infer"
    return [reshape_stream(walk, s, [first, P], w)]


def _frame_pick(ax: Ax, idxs: list, w: str) -> None:
    """Check that picking ``idxs`` on frame axis ``ax`` keeps one frame: the last (or only) one."""
    for k in idxs:
        if ax.size is not None:
            if not -ax.size <= k < ax.size:
                raise ConversionError(f"{w}: index {k} out of range for an axis of size {ax.size}")
            if k % ax.size == ax.size - 1:
                continue
        elif k == -1 or (ax.role == "B" and k == 0):
            continue
        raise ConversionError(f"{w}: picks frame {k} of the time axis; only the last frame (-1) "
                              "matches a per-frame stream (a graph that takes time steps apart "
                              "usually has its recurrence unrolled, as torch.onnx.export(dynamo=True) "
                              "does for nn.RNN; export with dynamo=False to keep an RNN node)")


@stream_op("Slice")
def _op_Slice(walk: Walker, node, i, ins, a, w):
    s = walk.settle(ins[0], w)
    starts, ends, axes, steps = slice_params(walk.folder, node, a, s.rank)
    new = list(s.axes)
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        A = new[ax]
        if A.kind == "D":
            blocks = A.blocks[py_slice(st, en, sp)]
            if not blocks:
                raise ConversionError(f"{w}: empty slice of the direction axis")
            new[ax] = replace(A, size=len(blocks), blocks=blocks)
            continue
        if A.size is not None:
            r = range(A.size)[py_slice(st, en, sp)]
            if list(r) == list(range(A.size)):
                continue
        if A.kind == "F":
            if A.size is not None and A.blocks and s.combine == "concat" and sp == 1 and len(r):
                wdt = A.size // len(A.blocks)
                if r.start % wdt == 0 and len(r) % wdt == 0:
                    blocks = A.blocks[r.start // wdt:(r.start + len(r)) // wdt]
                    new[ax] = replace(A, size=len(r), blocks=blocks)
                    continue
            raise ConversionError(f"{w}: slices the feature axis ({st}:{en}:{sp}); only whole "
                                  "directions of a recurrent output can be sliced")
        if A.size is None:
            if sp == 1 and st == 0 and en >= BIG:
                continue
            if not (sp == 1 and en >= BIG and st == -1) and not (A.role == "B" and st in (0, -1)):
                raise ConversionError(f"{w}: slices the time axis ({st}:{en}:{sp}); only all "
                                      "frames or the last one are supported")
        else:
            r = range(A.size)[py_slice(st, en, sp)]
            if len(r) != 1:
                raise ConversionError(f"{w}: slices the time axis ({st}:{en}:{sp})")
            _frame_pick(A, [r[0]], w)
        new[ax] = n_axis(1)
    return [s.with_axes(new, keep_dense=False)]


@stream_op("Gather")
def _op_Gather(walk: Walker, node, i, ins, a, w):
    if isinstance(ins[1], Stream) and not isinstance(ins[0], (Stream, ShapeVal)):
        return [embedding(walk, node, i, ins, a, w)]
    if isinstance(ins[1], (Stream, ShapeVal)):
        raise ConversionError(f"{w}: gathers with indices computed from the data")
    s = walk.settle(ins[0], w)
    idx = np.asarray(walk.const(node, 1, "indices", w)).astype(np.int64)
    if idx.ndim > 1:
        raise ConversionError(f"{w}: gathers with {idx.ndim}-D indices")
    ax = a.get("axis", 0) % s.rank
    A = s.axes[ax]
    idxs = [int(k) for k in idx.reshape(-1)]
    new = list(s.axes)
    if A.kind == "D":
        blocks = tuple(A.blocks[k] for k in idxs)
        if idx.ndim == 0:
            del new[ax]
            fi = next(k for k, x in enumerate(new) if x.kind == "F")
            new[fi] = replace(new[fi], blocks=blocks)
        else:
            new[ax] = replace(A, size=len(blocks), blocks=blocks)
    elif A.kind == "F":
        if idx.ndim == 1 and idxs == list(range(A.size or -1)):
            return [s]
        raise ConversionError(f"{w}: gathers single features; not supported")
    else:
        _frame_pick(A, idxs, w)
        if idx.ndim == 0:
            del new[ax]
        else:
            if len(idxs) != 1:
                raise ConversionError(f"{w}: gathers {len(idxs)} frames")
            new[ax] = n_axis(1)
    return [s.with_axes(new, keep_dense=False)]


@stream_op("Split")
def _op_Split(walk: Walker, node, i, ins, a, w):
    s = walk.settle(ins[0], w)
    ax = a.get("axis", 0) % s.rank
    A = s.axes[ax]
    outs = []
    if A.kind == "D":
        sizes = split_sizes(walk.folder, node, a, len(A.blocks))
        start = 0
        for n in sizes:
            new = list(s.axes)
            new[ax] = replace(A, size=n, blocks=A.blocks[start:start + n])
            outs.append(s.with_axes(new))
            start += n
        return outs
    if A.kind == "F" and A.blocks and s.combine == "concat" and A.size:
        wdt = A.size // len(A.blocks)
        sizes = split_sizes(walk.folder, node, a, A.size)
        start = 0
        for n in sizes:
            if start % wdt or n % wdt:
                raise ConversionError(f"{w}: splits inside a direction's output")
            new = list(s.axes)
            new[ax] = replace(A, size=n, blocks=A.blocks[start // wdt:(start + n) // wdt])
            outs.append(s.with_axes(new))
            start += n
        return outs
    raise ConversionError(f"{w}: splits axis {ax} ({A.kind}); only the directions of a recurrent "
                          "output can be split")


@stream_op("Concat")
def _op_Concat(walk: Walker, node, i, ins, a, w):
    if not all(isinstance(v, Stream) for v in ins if v is not None) or any(
            v is None for v in ins):
        raise ConversionError(f"{w}: concatenates the data with a tensor that is not on the "
                              "data path")
    ss = [walk.settle(v, w) for v in ins]
    r = ss[0].rank
    if any(x.rank != r for x in ss):
        raise ConversionError(f"{w}: inputs of different ranks")
    ax = a["axis"] % r
    kinds = {x.axes[ax].kind for x in ss}
    posts = {(x.post, x.combine) for x in ss}
    if len(posts) != 1 or kinds not in ({"D"}, {"F"}):
        raise ConversionError(f"{w}: concatenation along axis {ax} is supported only to join "
                              "directions of recurrent outputs")
    blocks = tuple(b for x in ss for b in x.axes[ax].blocks)
    A = ss[0].axes[ax]
    if A.kind == "F":
        if not all(x.axes[ax].blocks for x in ss) or any(x.axes[ax].size is None for x in ss):
            raise ConversionError(f"{w}: concatenates features of finished layers (parallel "
                                  "branches are not supported)")
        newA = Ax("F", sum(x.axes[ax].size for x in ss), blocks=blocks)
    else:
        newA = Ax("D", len(blocks), blocks=blocks)
    new = list(ss[0].axes)
    new[ax] = newA
    state = ss[0].state if all(x.state == ss[0].state for x in ss) else ""
    return [replace(ss[0], axes=tuple(new), state=state, fresh_dense=False)]


def _shape_ints(walk: Walker, v, node, k, w) -> tuple:
    if isinstance(v, ShapeVal):
        return v.dims
    c = walk.const(node, k, "shape part", w)
    return tuple(int(x) for x in np.asarray(c).reshape(-1))


@shape_op("Identity", "Cast")
def _shape_Identity(walk: Walker, node, ins, a, w):
    return [ins[0]]


@shape_op("Gather")
def _shape_Gather(walk: Walker, node, ins, a, w):
    idx = np.asarray(walk.const(node, 1, "indices", w)).astype(np.int64)
    dims = ins[0].dims
    picked = tuple(dims[int(k)] for k in idx.reshape(-1))
    return [ShapeVal(picked)]


@shape_op("Slice")
def _shape_Slice(walk: Walker, node, ins, a, w):
    starts, ends, axes, steps = slice_params(walk.folder, node, a, 1)
    return [ShapeVal(ins[0].dims[py_slice(starts[0], ends[0], steps[0])])]


@shape_op("Unsqueeze", "Squeeze")
def _shape_Unsqueeze(walk: Walker, node, ins, a, w):
    return [ins[0]]


@shape_op("Mul")
def _shape_Mul(walk: Walker, node, ins, a, w):
    """Product of two single dims (b * t in a view): a merged frame axis."""
    size, parts = 1, []
    for k, v in enumerate(ins):
        dims = _shape_ints(walk, v, node, k, w)
        if len(dims) != 1:
            return [None]
        parts.append(walk.norm_ax(dims[0]) if isinstance(dims[0], Ax) else dims[0])
    for p in parts:
        if isinstance(p, Ax):
            if p.kind != "N":
                return [None]
            size = None if size is None or p.size is None else size * p.size
        else:
            size = None if size is None else size * int(p)
    return [ShapeVal((n_axis(size),))]


@shape_op("Concat")
def _shape_Concat(walk: Walker, node, ins, a, w):
    dims = ()
    for k, v in enumerate(ins):
        dims += _shape_ints(walk, v, node, k, w)
    return [ShapeVal(dims)]

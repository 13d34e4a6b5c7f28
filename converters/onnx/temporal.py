"""Front-end layers on the time-structured data path: an Embedding (Gather from a constant
table by the token-id input) and a convolution over the time axis (``Conv`` with kernel k > 1,
its zero padding on the time axis given by its ``pads`` or by a ``Pad`` node whose only reader
is that Conv, PyTorch's causal ``F.pad(x, (k - 1, 0))``). ``heads.py`` and ``plumbing.py``
hand these cases here."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from streamlstm.errors import ConversionError, NetworkError
from streamlstm.network import Embedding, TimeConv1d

from .stream import Ax, Stream, n_axis
from .walk import Walker


def embedding(walk: Walker, node, i, ins, a, w) -> Stream:
    """Gather(table, ids): the ids are the graph input itself, one token id per frame."""
    table = np.asarray(walk.const(node, 0, "data", w), np.float64)
    ids = ins[1]
    if ids.chain or any(ax.kind not in ("?", "N") for ax in ids.axes) or int(a.get("axis", 0)) != 0:
        raise ConversionError(f"{w}: a Gather from a constant table is supported only on the token-id "
                              "graph input itself (an Embedding)")
    if table.ndim != 2:
        raise ConversionError(f"{w}: embedding table of shape {list(table.shape)}; expected 2-D")
    if walk.input_size not in (None, 1):
        raise ConversionError(f"{w}: the token-id input has {walk.input_size} values per frame; expected one")
    walk.input_size, walk.feat_id = 1, -2   # no input axis is a feature: a frame is one id
    axes = tuple(n_axis(ax.size, ax.role, ax.id) if ax.kind == "?" else ax for ax in ids.axes)
    try:
        layer = Embedding(table, name=node.name or f"Gather_{i}")
    except NetworkError as e:
        raise ConversionError(f"{w}: {e}") from None
    return Stream(axes + (Ax("F", int(table.shape[1])),), chain=(layer,))


def time_pad(walk: Walker, node, i, ins, a, w) -> Stream:
    """A zero Pad of the time axis only, read by nothing but one Conv: kept on the stream for it."""
    readers = walk.g.consumers.get(node.output[0], [])
    convs = [walk.g.nodes[k] for k in readers]
    if len(convs) != 1 or convs[0].op_type != "Conv":
        raise ConversionError(f"{w}: Pad on the data path is supported only right before a Conv over time")
    s = ins[0]
    pads = [int(p) for p in (np.asarray(walk.const(node, 1, "pads", w)).reshape(-1) if len(node.input) > 1
                             and node.input[1] else a.get("pads", []))]
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if len(node.input) > 2 and node.input[2]:
        v = walk.const(node, 2, "constant_value", w)
        if np.any(np.asarray(v)):
            raise ConversionError(f"{w}: Pad with a nonzero value is not supported")
    r = s.rank
    if mode != "constant" or len(pads) != 2 * r or r != 3 or any(pads[k] or pads[k + r] for k in (0, 1)):
        raise ConversionError(f"{w}: only a zero Pad of the last (time) axis of a (batch, channels, time) "
                              f"tensor is supported before a Conv; pads {pads}, mode {mode!r}")
    return PaddedStream(*[getattr(s, f.name) for f in fields(Stream)], time_pad=(pads[2], pads[5]))


@dataclass(frozen=True)
class PaddedStream(Stream):
    """A stream with zero frames before and after it, read only by the Conv it waits for."""

    time_pad: tuple = (0, 0)


def time_conv(walk: Walker, node, i, ins, a, w, Wc: np.ndarray) -> Stream:
    """Conv over the time axis of (batch, channels, time): a TimeConv1d with ``pads`` (plus those
    of the Pad before it) as its left and right zeros; the output has one frame per frame."""
    s = ins[0]
    before = s.time_pad if isinstance(s, PaddedStream) else (0, 0)
    if Wc.ndim != 3 or s.rank != 3:
        raise ConversionError(f"{w}: only 1-D convolutions over time are supported (weight {list(Wc.shape)})")
    s = walk.plain(walk.feature(s, 1, Wc.shape[1] * int(a.get("group", 1)), w), w)
    if s.axes[2].kind != "N" or s.axes[2].unit and s.axes[2].size == 1 and s.axes[2].role != "T":
        raise ConversionError(f"{w}: the Conv's last axis is not the time axis")
    if any(int(st) != 1 for st in a.get("strides", [1])):
        raise ConversionError(f"{w}: a Conv over time with a stride drops frames; not supported")
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    k, dil = int(Wc.shape[2]), int(a.get("dilations", [1])[0])
    span = (k - 1) * dil
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        small = span // 2
        pads = [small, span - small] if auto == "SAME_UPPER" else [span - small, small]
    else:
        pads = [int(p) for p in a.get("pads", [0, 0])]
    left, right = before[0] + pads[0], before[1] + pads[1]
    if left + right != span:
        raise ConversionError(f"{w}: a Conv over time must keep one output per frame (left + right padding "
                              f"= (k - 1) * dilation = {span}); it pads {left} + {right}")
    Bv = walk.const(node, 2, "B", w, required=False)
    try:
        layer = TimeConv1d(Wc, None if Bv is None else np.asarray(Bv, np.float64).reshape(-1), dilation=dil,
                           padding=(left, right), groups=int(a.get("group", 1)), name=node.name or f"Conv_{i}")
    except NetworkError as e:
        raise ConversionError(f"{w}: {e}") from None
    axes = list(s.axes)
    axes[1] = Ax("F", int(Wc.shape[0]))
    return Stream(tuple(axes), chain=s.chain + (layer,))

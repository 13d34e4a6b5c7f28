"""Symbolic tensors on the data path of an ONNX graph, as the importer tracks them.

A ``Stream`` is a tensor computed from the model input. Its axes are frame axes (``N``: time,
batch of one, or unit dims), the feature axis (``F``), a direction axis (``D``) of a recurrent
output, or input axes not yet known to be frame or feature (``?``). A feature is either *plain*
(produced by the finished layer chain ``chain``) or made of *blocks*: per-direction outputs of a
recurrent layer that is still ``Pending`` until a consumer shows how its directions are used
(concatenated, summed, one direction only). ``finish`` turns blocks into IR layers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import numpy as np

from streamlstm.errors import ConversionError, NetworkError
from streamlstm.network import LSTM, Activation, HoldFirst, act

UNKNOWN = None


@dataclass(eq=False)
class Pending:
    """A recurrent layer (all its directions) whose output use is not settled yet."""

    chain: tuple
    layer: object
    label: str
    reverse_dirs: frozenset


@dataclass(frozen=True)
class Block:
    src: Pending
    d: int
    what: str = "Y"          # "Y", "Y_h" or "Y_c"


@dataclass(frozen=True)
class Ax:
    kind: str                # "N", "F", "D" or "?"
    size: int | None
    id: int = -1             # identity of an input axis ("?" and the axes it becomes)
    role: str = ""           # "T" (time) or "B" (batch, one at run time) for N axes
    blocks: tuple = ()       # D: one Block per entry; F: blocks side by side (empty: plain)

    @property
    def unit(self) -> bool:
        return self.kind in ("N", "?") and (self.size == 1 or self.role == "B")


def n_axis(size, role: str = "", id: int = -1) -> Ax:
    return Ax("N", size, id, role)


@dataclass(frozen=True)
class Stream:
    axes: tuple
    chain: tuple = ()
    post: tuple = ()             # elementwise Acts still to apply after the pending blocks
    combine: str = "concat"      # how F blocks are combined: concat, sum, mul, ave
    fresh_dense: bool = False    # chain[-1] is a Dense an Add/Mul may fold into
    state: str = ""              # "h"/"c": derived from Y_h/Y_c only

    @property
    def rank(self) -> int:
        return len(self.axes)

    def with_axes(self, axes, keep_dense: bool = True, keep_state: bool = True) -> "Stream":
        return replace(self, axes=tuple(axes), fresh_dense=self.fresh_dense and keep_dense,
                       state=self.state if keep_state else "")

    @property
    def blocks(self) -> tuple:
        for ax in self.axes:
            if ax.kind in ("F", "D") and ax.blocks:
                return ax.blocks
        return ()

    def feature_index(self) -> int | None:
        for k, ax in enumerate(self.axes):
            if ax.kind == "F":
                return k
        return None


@dataclass(frozen=True)
class ShapeVal:
    """A 1-D int tensor holding dims of a stream (from Shape): ints or Ax entries."""

    dims: tuple


def fold_unit_d(s: Stream, where: str) -> Stream:
    """Fold D axes holding a single block into the F axis (which then carries that block)."""
    ds = [k for k, ax in enumerate(s.axes) if ax.kind == "D"]
    if not ds:
        return s
    if len(ds) > 1:
        raise ConversionError(f"{where}: more than one direction axis")
    k = ds[0]
    d = s.axes[k]
    if len(d.blocks) != 1:
        return s
    axes = list(s.axes)
    axes[k] = n_axis(1)
    fi = s.feature_index()
    f = axes[fi]
    axes[fi] = replace(f, blocks=d.blocks)
    return s.with_axes(axes)


def feature_size(ax: Ax) -> int | None:
    if ax.kind == "D":
        return len(ax.blocks)
    return ax.size


def merge_features(feat: list, where: str) -> Ax:
    """One F axis from the feature axes of a tensor, in memory order (D then F means concat)."""
    if len(feat) == 1:
        ax = feat[0]
        if ax.kind == "D":
            raise ConversionError(f"{where}: direction axis without a feature axis")
        return ax
    if len(feat) == 2 and feat[0].kind == "D" and feat[1].kind == "F" and not feat[1].blocks:
        return Ax("F", feat[1].size * len(feat[0].blocks), blocks=feat[0].blocks)
    if len(feat) == 2 and feat[0].kind == "F" and feat[1].kind == "D":
        raise ConversionError(f"{where}: merges the hidden axis before the direction axis, which "
                              "interleaves the directions' units; only [forward, backward] "
                              "concatenation (direction axis first) is supported")
    raise ConversionError(f"{where}: cannot merge feature axes {[(a.kind, a.size) for a in feat]}")


def finish(s: Stream, where: str, cache: dict) -> Stream:
    """A stream whose feature is plain: settle a pending recurrent layer from its blocks."""
    s = fold_unit_d(s, where)
    if any(ax.kind == "D" for ax in s.axes):
        raise ConversionError(f"{where}: the directions of a bidirectional output are still on a "
                              "separate axis here; merge them first (Transpose+Reshape or Concat)")
    fi = s.feature_index()
    if fi is None:
        return s
    f = s.axes[fi]
    if not f.blocks:
        return s
    chain = settle(f.blocks, s.combine, s.post, where, cache)
    width = f.size
    axes = list(s.axes)
    axes[fi] = Ax("F", width)
    return Stream(tuple(axes), chain=chain)


def settle(blocks: tuple, combine: str, post: tuple, where: str, cache: dict) -> tuple:
    """The layer chain that produces the given blocks of a pending recurrent layer."""
    srcs = {id(b.src): b.src for b in blocks}
    if len(srcs) != 1:
        raise ConversionError(f"{where}: combines outputs of different recurrent layers "
                              f"({', '.join(p.label for p in srcs.values())}); only the output of "
                              "the last recurrent layer can continue the network")
    p = next(iter(srcs.values()))
    dirs = tuple(b.d for b in blocks)
    whats = {b.what for b in blocks}
    cell = "Y_c" in whats
    if cell and (whats != {"Y_c"} or not isinstance(p.layer, LSTM) or p.layer.proj is not None):
        raise ConversionError(f"{where}: uses the cell state Y_c of {p.label} as data together with Y or "
                              "Y_h (or of a projected LSTM); only the cell states alone can be an output")
    held = [k for k, b in enumerate(blocks) if b.what in ("Y_h", "Y_c") and b.d in p.reverse_dirs]
    if held and combine != "concat":
        raise ConversionError(f"{where}: {combine} of the final states of {p.label}'s directions; "
                              "only their concatenation is supported")
    key = (id(p), dirs, combine, post, cell)
    if key in cache:
        return cache[key][1]
    L = p.layer
    D = L.num_directions
    if combine == "concat":
        if dirs == tuple(range(D)):
            layer = replace_layer(L, merge="concat")
        elif D == 2 and len(dirs) == 1:
            layer = one_direction(L, dirs[0])
        else:
            raise ConversionError(f"{where}: orders the directions of {p.label} as {list(dirs)}; "
                                  "only [forward, backward] concatenation is supported")
    else:
        if D != 2 or sorted(dirs) != [0, 1]:
            raise ConversionError(f"{where}: {combine} of directions {list(dirs)} of {p.label}")
        layer = replace_layer(L, merge=combine)
    if cell:
        layer = replace_layer(layer, output="c")
    hold = ()
    if held:  # a backward direction's Y_h is its output at frame 0: held in every row
        P = layer.unit_output_size
        cols = np.concatenate([np.arange(k * P, (k + 1) * P) for k in held])
        hold = (HoldFirst(cols, name=f"{p.label}.Y_h"),)
    chain = p.chain + (layer,) + hold + tuple(Activation(a, name=f"{p.label}.post{k}") for k, a in enumerate(post))
    cache[key] = (p, chain)
    return chain


def replace_layer(L, **kw):
    vals = {f.name: getattr(L, f.name) for f in dataclasses.fields(L)}
    vals.update(kw)
    try:
        return type(L)(**vals)
    except NetworkError as e:
        raise ConversionError(str(e)) from None


def one_direction(L, d: int):
    """The layer reduced to direction ``d`` of a bidirectional layer."""
    n = L.n_acts
    kw = {"direction": "forward" if d == 0 else "reverse", "merge": "concat",
          "activations": tuple(L.activations[d * n:(d + 1) * n])}
    for name, v in L.arrays().items():
        if name in ("W", "R", "Wb", "Rb", "P", "proj", "initial_h", "initial_c"):
            kw[name] = v[d:d + 1]
    return replace_layer(L, **kw)


ELEMENTWISE = {
    "Relu": lambda a: act("Relu"),
    "Tanh": lambda a: act("Tanh"),
    "Sigmoid": lambda a: act("Sigmoid"),
    "Softsign": lambda a: act("Softsign"),
    "Softplus": lambda a: act("Softplus"),
    "LeakyRelu": lambda a: act("LeakyRelu", a.get("alpha", 0.01)),
    "HardSigmoid": lambda a: act("HardSigmoid", a.get("alpha", 0.2), a.get("beta", 0.5)),
    "Elu": lambda a: act("Elu", a.get("alpha", 1.0)),
    "ThresholdedRelu": lambda a: act("ThresholdedRelu", a.get("alpha", 1.0)),
}

"""Shared state and helpers of the ONNX importer's data-path walk (see importer).

``Walker`` holds the graph, the constant folder and the feature-axis choice for the input,
and answers the questions every op handler asks: is this operand constant, which axis of this
stream is the feature, what layer chain does it carry.
"""

from __future__ import annotations

from dataclasses import replace

from streamlstm.errors import ConversionError

from .fold import Folder, Graph, Zeros
from .stream import Ax, ShapeVal, Stream, feature_size, finish, n_axis

BIG = 2 ** 31 - 1
HINT = (" -- if this part is a front end or post-processing, import the recurrent part alone with "
        "inputs=[...] / outputs=[...] tensor names (`streamlstm info model.onnx` lists them)")


class Broken:
    """A tensor that could not be interpreted; its error is raised only if the output needs it."""

    def __init__(self, error: ConversionError):
        self.error = error


class Walker:
    """State of one import: graph, folders, symbolic environment, input feature choice."""

    def __init__(self, g: Graph):
        self.g = g
        self.folder = Folder(g)
        self.cache: dict = {}
        self.env: dict = {}
        self.feat_id: int | None = None
        self.input_size: int | None = None
        self.float_type = 0

    def const(self, node, k: int, what: str, w: str, required: bool = True):
        name = node.input[k] if len(node.input) > k else ""
        if not name:
            if required:
                raise ConversionError(f"{w}: missing input {what}")
            return None
        if isinstance(self.env.get(name), (Stream, ShapeVal)):
            raise ConversionError(f"{w}: {what} ({name!r}) is computed from the data; it must be constant")
        v = self.folder.value(name)
        if v is None:
            why = self.folder.why(name)
            if why:
                raise ConversionError(f"{w}: {what} ({name!r}) cannot be computed: {why}")
            raise ConversionError(f"{w}: {what} ({name!r}) is not constant and not on the data path" + HINT)
        if isinstance(v, Zeros):
            raise ConversionError(f"{w}: {what} ({name!r}) has a data-dependent shape")
        return v

    def norm(self, s: Stream) -> Stream:
        if self.feat_id is None or not any(ax.kind == "?" for ax in s.axes):
            return s
        return s.with_axes([self.norm_ax(ax) for ax in s.axes])

    def norm_ax(self, ax: Ax) -> Ax:
        if ax.kind != "?" or self.feat_id is None:
            return ax
        if ax.id == self.feat_id:
            return Ax("F", ax.size if ax.size is not None else self.input_size)
        return n_axis(ax.size, ax.role, ax.id)

    def choose(self, s: Stream, k: int, w: str) -> Stream:
        s = self.norm(s)
        ax = s.axes[k]
        if ax.kind == "?":
            self.feat_id = ax.id
            self.input_size = ax.size
            s = self.norm(s)
        elif ax.kind != "F":
            raise ConversionError(f"{w}: expects the feature axis at position {k} of its input, but the "
                                  f"feature sits at position {s.feature_index()} (rank {s.rank})")
        return s

    def settle(self, s: Stream, w: str) -> Stream:
        """Decide the input's feature axis if no op has yet: the last axis of known size > 1
        (time axes are usually dynamic), else the last axis of known size, else the last one."""
        s = self.norm(s)
        cands = [k for k, ax in enumerate(s.axes) if ax.kind == "?"]
        if not cands:
            return s
        known = [k for k in cands if s.axes[k].size is not None]
        big = [k for k in known if s.axes[k].size != 1]
        return self.choose(s, (big or known or cands)[-1], w)

    def feature(self, s: Stream, k: int, width: int, w: str) -> Stream:
        if not -s.rank <= k < s.rank:
            raise ConversionError(f"{w}: input of rank {s.rank} has no axis {k}")
        k %= s.rank
        s = self.choose(s, k, w)
        ax = s.axes[k]
        if ax.size is None:
            if self.input_size is None and not s.chain and not ax.blocks:
                self.input_size = int(width)
            axes = list(s.axes)
            axes[k] = replace(ax, size=int(width))
            s = s.with_axes(axes)
        elif feature_size(ax) != width:
            raise ConversionError(f"{w}: feature width {ax.size} does not match the weights' input "
                                  f"width {width}")
        return s

    def plain(self, s: Stream, w: str) -> Stream:
        return finish(self.settle(s, w), w, self.cache)

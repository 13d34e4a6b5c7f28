"""ONNX graph -> Network for graphs whose one call is one frame (``dims=`` given to the import).

Streaming models such as Silero VAD take a chunk of audio per call (``input`` of shape
(batch, samples)), run a front end over it (an STFT as a strided Conv, convolutions, norms),
advance a recurrent layer by one step with its state fed back through graph inputs and
outputs, and end in a head. Every tensor then has a concrete shape once the free dimensions
are fixed (``dims``; the others are 1), so this walk evaluates the graph concretely:

- a tensor is a constant (numpy), a ``View`` of a value the network computes, or a
  ``Port``: derived from a state input, or a recurrent node's next state (the session owns
  that state, so these are only traced);
- a ``View`` is a value id plus the frame position every element of the tensor reads (-1: a
  zero). Shape ops (Reshape, Transpose, Slice, Gather, Pad, Concat ...) only move
  positions: they are the same ops applied to the array of positions, and cost nothing until
  a computing op needs its input laid out, when one ``Rearrange`` gathers it;
- ``If`` nodes take the branch their (constant) condition names; constants fold with the
  folder's op table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import onnx

from streamlstm.errors import ConversionError, NetworkError
from streamlstm.network import (
    DIRECTIONS, GRU, LSTM, RNN, Activation, Binary, Concat, Conv1d, Dense, Elementwise, Embedding, LayerNorm,
    Network, Rearrange, Reduce, act,
)

from ..normalise import normalise
from .fold import _FOLDERS, Folder, Graph, Zeros, attrs, where
from .load import to_array

ACTIVATIONS = {"Relu": "Relu", "Tanh": "Tanh", "Sigmoid": "Sigmoid", "Softsign": "Softsign",
               "Softplus": "Softplus", "LeakyRelu": "LeakyRelu", "Elu": "Elu", "HardSigmoid": "HardSigmoid"}
UNARY = {"Sqrt": "sqrt", "Abs": "abs", "Neg": "neg", "Exp": "exp", "Log": "log", "Reciprocal": "reciprocal",
         "Erf": "erf"}
# op -> (unit op with the constant second, unit op with the constant first)
WITH_CONSTANT = {"Add": ("add", "add"), "Mul": ("mul", "mul"), "Sub": ("add", "sub_from"),
                 "Div": ("div", "div_into"), "Pow": ("pow", None), "Max": ("max", "max"), "Min": ("min", "min")}
BETWEEN = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Max": "max", "Min": "min"}
MOVES = {"Identity", "Dropout", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Slice", "Gather",
         "Split", "Cast", "CastLike"}
RECURRENT = {"LSTM": (LSTM, 4, 3), "GRU": (GRU, 3, 2), "RNN": (RNN, 1, 1)}
MAX_DEPTH = 16  # nested If branches


@dataclass(frozen=True)
class View:
    vid: int
    pos: np.ndarray   # int64, the tensor's shape: position in value ``vid`` (-1: zero)

    @property
    def shape(self) -> tuple:
        return self.pos.shape


@dataclass(frozen=True)
class Port:
    """A tensor derived from a state input or a recurrent node's next state: traced, not computed."""

    zeros: np.ndarray  # its shape, for the shape ops that read it
    what: str


def import_frame_graph(g: Graph, model: onnx.ModelProto, data: str | None, outputs: list[str] | None,
                       dims: dict, name: str = ""):
    return _FrameImporter(g, model, dims, name).run(data, outputs)


class _FrameImporter:
    def __init__(self, g: Graph, model: onnx.ModelProto, dims: dict, name: str):
        self.g, self.model, self.name = g, model, name
        # a named free dimension -> its size, or a graph input -> its whole shape
        self.shapes = {str(k): tuple(_positive(k, d) for d in v) for k, v in dims.items()
                       if isinstance(v, (tuple, list))}
        self.dims = {str(k): _positive(k, v) for k, v in dims.items() if not isinstance(v, (tuple, list))}
        self.folder = _EnvFolder(g, self)
        self.layers: list = []
        self.sources: list = []
        self.widths: list[int] = []
        self.env: dict = {}
        self.used_dims: set = set()

    # ------------------------------------------------------------------ driver
    def run(self, data: str | None, outputs: list[str] | None):
        g = self.g
        plain = [n for n in g.input_names if n not in g.initializers]
        if data is None:
            data_cands = [n for n in plain if not self._feeds_recurrent_state(n)]
            if len(data_cands) != 1:
                raise ConversionError(f"cannot tell the data input among {plain} (state inputs feed a recurrent "
                                      "node's initial state); name it with inputs=['tensor_name']")
            data = data_cands[0]
        self.input_name = data
        shape = self._concrete(data)
        self.input_size = int(np.prod(shape, dtype=np.float64))
        if self.input_size > self.folder.limit:
            raise ConversionError(f"dims: an input of shape {list(shape)} ({self.input_size} values per frame) is "
                                  f"larger than this model's data can justify (limit {self.folder.limit})")
        self.env[data] = View(-1, np.arange(self.input_size).reshape(shape))
        for n in plain:
            if n != data:
                self.env[n] = Port(np.zeros(self._concrete(n)), "state")
        for n, t in g.initializers.items():
            if n not in self.env:
                self.env[n] = ("lazy", t)
        unknown = (set(self.dims) | set(self.shapes)) - self.used_dims
        if unknown:
            raise ConversionError(f"dims: the graph inputs have no free dimension or input named {sorted(unknown)}")
        self._walk(g.nodes, 0)
        return self._network(outputs)

    def _feeds_recurrent_state(self, name: str) -> bool:
        """True when ``name`` reaches a recurrent node's initial state (in any branch)."""
        reach = {name}

        def visit(nodes) -> bool:
            for n in nodes:
                subs = [a.g for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
                for sub in subs:
                    if visit(sub.node):
                        return True
                if n.op_type in RECURRENT and any(x in reach for x in n.input[5:7]):
                    return True
                if n.op_type == "If":  # data flow only: a branch output carries what it computes from
                    for sub in subs:
                        reach.update(o for o, bo in zip(n.output, sub.output) if bo.name in reach)
                elif n.op_type not in ("Shape", "Size") and any(x in reach for x in n.input):
                    reach.update(o for o in n.output if o)
            return False

        return visit(self.g.nodes)

    def _concrete(self, name: str) -> tuple:
        vi = next((v for v in list(self.model.graph.input) if v.name == name), None)
        if name in self.shapes:
            self.used_dims.add(name)
            return self.shapes[name]
        if vi is None or not vi.type.tensor_type.HasField("shape"):
            raise ConversionError(f"input {name!r}: its shape is not declared; give it with dims={{{name!r}: (...)}}")
        out = []
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                out.append(int(d.dim_value))
            elif d.dim_param in self.dims:
                self.used_dims.add(d.dim_param)
                out.append(self.dims[d.dim_param])
            else:
                out.append(1)  # a free dimension not given: the batch of one stream
        return tuple(out)

    def _walk(self, nodes, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ConversionError(f"If branches nested deeper than {MAX_DEPTH} levels")
        for i, node in enumerate(nodes):
            w = where(node, i)
            if node.domain not in ("", "ai.onnx"):
                raise ConversionError(f"{w}: op {node.op_type} of domain {node.domain!r} is not supported")
            if node.op_type == "If":
                self._if(node, w, depth)
                continue
            ins = [self._get(x) if x else None for x in node.input]
            try:
                outs = self._node(node, ins, attrs(node), w)
            except (NetworkError, ValueError, IndexError, KeyError, TypeError) as e:
                raise ConversionError(f"{w}: {type(e).__name__}: {e}") from None
            for o, v in zip(node.output, outs):
                if isinstance(v, View) and v.pos.size > self.folder.limit:
                    raise ConversionError(f"{w}: a frame tensor of {v.pos.size} values is larger than this "
                                          f"model's data can justify (limit {self.folder.limit})")
                if o:
                    self.env[o] = np.asarray(v) if isinstance(v, (np.generic, bool, int, float)) else v

    def _get(self, name: str):
        v = self.env.get(name)
        if isinstance(v, tuple) and v and v[0] == "lazy":
            v = self.env[name] = to_array(v[1])
        if v is None:
            raise ConversionError(f"tensor {name!r} is used before it is computed")
        return v

    def _if(self, node, w: str, depth: int) -> None:
        cond = self._get(node.input[0])
        if not isinstance(cond, np.ndarray) or cond.size != 1:
            raise ConversionError(f"{w}: the condition does not fold to a constant; give the graph inputs it "
                                  "depends on with constants={...} (or their sizes with dims={...})")
        a = attrs(node)
        branch = a["then_branch"] if bool(cond.reshape(-1)[0]) else a["else_branch"]
        for t in branch.initializer:
            self.env[t.name] = to_array(t)
        self._walk(list(branch.node), depth + 1)
        for bo, o in zip(branch.output, node.output):
            if o:
                self.env[o] = self._get(bo.name)

    # ------------------------------------------------------------------ nodes
    def _node(self, node, ins, a, w) -> list:
        op = node.op_type
        if all(v is None or isinstance(v, np.ndarray) for v in ins):
            return self._fold(node, ins, a, w)
        if op in RECURRENT:
            return self._recurrent(node, ins, a, w)
        if any(isinstance(v, Port) for v in ins):
            return self._port(node, ins, a, w)
        if op == "Shape":
            s = np.array(ins[0].shape, np.int64)
            return [s[a.get("start", 0):a.get("end", None)]]
        if op == "Size":
            return [np.array(int(np.prod(ins[0].shape)), np.int64)]
        if op == "Gather" and isinstance(ins[0], np.ndarray):
            return [self._embedding(ins[0], ins[1], a, w)]
        if op in MOVES or op == "Concat" and all(isinstance(v, View) for v in ins):
            return self._move(node, ins, a, w)
        if op == "Concat":
            return [self._concat_with_constants(ins, a)]
        if op == "Pad":
            return [self._pad(node, ins, a, w)]
        if op in ACTIVATIONS:
            alpha = a.get("alpha")
            return [self._compute(ins[0], Activation(act(ACTIVATIONS[op], alpha, a.get("beta"))))]
        if op in UNARY:
            return [self._compute(ins[0], Elementwise(UNARY[op]))]
        if op in WITH_CONSTANT or op in BETWEEN:
            return [self._arith(op, ins, w)]
        if op == "Conv":
            return [self._conv(node, ins, a, w)]
        if op in ("MatMul", "Gemm"):
            return [self._matmul(op, ins, a, w)]
        if op in ("ReduceMean", "ReduceSum", "ReduceMax"):
            return [self._reduce(node, ins, a, w)]
        if op in ("MaxPool", "AveragePool"):
            return [self._pool(op, ins, a, w)]
        if op == "BatchNormalization":
            return [self._batchnorm(node, ins, a, w)]
        if op == "LayerNormalization":
            return [self._layernorm(ins, a, w)] + [None] * (len(node.output) - 1)
        if op == "Softmax":
            return [self._softmax(ins[0], a, w)]
        if op == "Clip":
            return [self._clip(ins, a)]
        raise ConversionError(f"{w}: op {op} is not supported on the data path of a frame graph")

    def _fold(self, node, ins, a, w) -> list:
        op = node.op_type
        if op == "Constant":
            from .fold import _constant_attr
            return [_constant_attr(node, a)]
        if op in ("ConstantOfShape",):
            val = to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            dims = [int(d) for d in ins[0].reshape(-1)]
            self.folder.check_size(node, math.prod(dims), val.dtype.itemsize)
            return [np.full(dims, val.reshape(-1)[0], val.dtype)]
        if op == "Expand":
            dims = [int(d) for d in ins[1].reshape(-1)]
            self.folder.check_size(node, int(np.prod(np.broadcast_shapes(ins[0].shape, tuple(dims)))))
            return [ins[0] * np.ones(dims, ins[0].dtype)]
        simple = {"Equal": np.equal, "Less": np.less, "Greater": np.greater, "And": np.logical_and,
                  "Or": np.logical_or, "Pow": np.power, "Max": np.maximum, "Min": np.minimum}
        if op in simple:
            return [np.asarray(simple[op](ins[0], ins[1]))]
        if op == "Not":
            return [np.logical_not(ins[0])]
        if op == "Size":
            return [np.array(ins[0].size, np.int64)]
        if op == "Sqrt":
            return [np.sqrt(ins[0])]
        fn = _FOLDERS.get(op)
        if fn is None:
            raise ConversionError(f"{w}: op {op} over constants cannot be folded")
        for v in ins:
            if isinstance(v, np.ndarray):
                self.folder.check_size(node, v.size)
        out = fn(self.folder, node, a, ins)
        return [np.asarray(v) if isinstance(v, (np.generic, float, int)) else v for v in out]

    def _port(self, node, ins, a, w) -> list:
        """Shape ops over a state tensor stay state tensors (their shape is followed); anything
        else that mixes state into the data path is refused."""
        op = node.op_type
        if op in ("Shape", "Size"):
            return self._fold(node, [v.zeros if isinstance(v, Port) else v for v in ins], a, w)
        if op in MOVES or op in ("Concat", "Add", "Mul", "Sub"):
            zeros = [v.zeros if isinstance(v, Port) else (np.zeros(v.shape) if isinstance(v, View) else v)
                     for v in ins]
            outs = self._fold(node, zeros, a, w)
            return [Port(np.zeros(np.shape(o)), "state") if o is not None else None for o in outs]
        raise ConversionError(f"{w}: op {op} reads a recurrent state tensor on the data path; only the "
                              "recurrent nodes' initial states may come from state inputs")

    # ------------------------------------------------------------------ values
    def _emit(self, layer, srcs: list[int]) -> View:
        ins = [self.input_size if s < 0 else self.widths[s] for s in srcs]
        width = layer.output_width(ins[0]) if layer.arity == 1 else layer.output_width_of(tuple(ins))
        self.layers.append(layer)
        self.sources.append(list(srcs))
        self.widths.append(width)
        return View(len(self.layers) - 1, np.arange(width))

    def _width(self, vid: int) -> int:
        return self.input_size if vid < 0 else self.widths[vid]

    def _laid_out(self, v: View) -> int:
        """The value id holding ``v``'s elements in row-major order (a Rearrange if needed)."""
        flat = v.pos.reshape(-1)
        if flat.size == self._width(v.vid) and np.array_equal(flat, np.arange(flat.size)):
            return v.vid
        return self._emit(Rearrange(flat), [v.vid]).vid

    def _compute(self, v, layer, shape=None) -> View:
        if not isinstance(v, View):
            raise ConversionError("expected a tensor computed from the input")
        out = self._emit(layer, [self._laid_out(v)])
        return View(out.vid, out.pos.reshape(v.shape if shape is None else shape))

    def _move(self, node, ins, a, w) -> list:
        op = node.op_type
        if op == "Concat":
            axis = int(a["axis"])
            if len({v.vid for v in ins}) == 1:  # parts of one value: only positions move
                return [View(ins[0].vid, np.concatenate([v.pos for v in ins], axis=axis))]
            parts = [self._laid_out(v) for v in ins]
            cat = self._emit(Concat(), parts).vid
            offs = np.cumsum([0] + [self._width(p) for p in parts])
            pos = [np.arange(v.pos.size).reshape(v.shape) + o for v, o in zip(ins, offs)]
            return [View(cat, np.concatenate(pos, axis=axis))]
        if op == "Gather" and isinstance(ins[1], View):
            raise ConversionError(f"{w}: Gather with indices computed from the data is not supported")
        v = ins[0]
        vals = [v.pos.astype(np.int64)] + [x for x in ins[1:]]
        if op in ("Cast", "CastLike"):
            return [v]
        outs = _FOLDERS["Identity" if op == "Dropout" else op](self.folder, node, a, vals)
        if op == "Dropout":
            return [v, None]
        return [View(v.vid, np.asarray(o, np.int64)) for o in outs]

    def _concat_with_constants(self, ins, a) -> View:
        parts = []
        for v in ins:
            if isinstance(v, np.ndarray):
                raise ConversionError("Concat of data with a nonzero constant is not supported") \
                    if np.any(v) else None
                parts.append(View(-2, np.full(v.shape, -1, np.int64)))
            else:
                parts.append(v)
        data = [p for p in parts if p.vid != -2]
        base = self._laid_out(data[0]) if len(data) == 1 else self._emit(Concat(), [self._laid_out(p) for p in data]).vid
        off, pos = 0, []
        for p in parts:
            if p.vid == -2:
                pos.append(p.pos)
            else:
                pos.append(np.arange(p.pos.size).reshape(p.shape) + off)
                off += p.pos.size
        return View(base, np.concatenate(pos, axis=int(a["axis"])))

    def _pad(self, node, ins, a, w) -> View:
        v = ins[0]
        pads = [int(p) for p in (ins[1].reshape(-1) if len(ins) > 1 and ins[1] is not None else a["pads"])]
        if len(ins) > 2 and ins[2] is not None and np.any(ins[2]):
            raise ConversionError(f"{w}: Pad with a nonzero constant value is not supported")
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        r = len(v.shape)
        if len(ins) > 3 and ins[3] is not None:
            axes = [int(x) % r for x in ins[3].reshape(-1)]
        else:
            axes = list(range(r))
        width = [(0, 0)] * r
        for k, ax in enumerate(axes):
            width[ax] = (pads[k], pads[k + len(axes)])
        if any(p < 0 for pr in width for p in pr):
            raise ConversionError(f"{w}: negative pads (cropping) are not supported")
        grown = int(np.prod([n + a + b for n, (a, b) in zip(v.shape, width)], dtype=np.float64))
        if grown > self.folder.limit:
            raise ConversionError(f"{w}: padding to {grown} values is larger than this model's data can justify")
        np_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge"}.get(mode)
        if np_mode is None:
            raise ConversionError(f"{w}: pad mode {mode!r} is not supported")
        kw = {"constant_values": -1} if np_mode == "constant" else {}
        return View(v.vid, np.pad(v.pos, width, mode=np_mode, **kw))

    def _embedding(self, table, ids, a, w) -> View:
        if not (isinstance(ids, View) and ids.vid == -1 and self.input_size == 1 and int(a.get("axis", 0)) == 0):
            raise ConversionError(f"{w}: a Gather from a constant table needs the graph's token-id input "
                                  "(one id per call) as its indices")
        out = self._emit(Embedding(np.asarray(table, np.float64).reshape(table.shape[0], -1)), [-1])
        return View(out.vid, out.pos.reshape(ids.shape + table.shape[1:]))

    def _arith(self, op, ins, w) -> View:
        x, y = ins
        shape = np.broadcast_shapes(np.shape(x) if not isinstance(x, View) else x.shape,
                                    np.shape(y) if not isinstance(y, View) else y.shape)
        if isinstance(x, View) and isinstance(y, View):
            a = self._laid_out(View(x.vid, np.broadcast_to(x.pos, shape)))
            b = self._laid_out(View(y.vid, np.broadcast_to(y.pos, shape)))
            out = self._emit(Binary(BETWEEN[op]), [a, b])
            return View(out.vid, out.pos.reshape(shape))
        data, c, first = (x, y, False) if isinstance(x, View) else (y, x, True)
        if op not in WITH_CONSTANT or WITH_CONSTANT[op][int(first)] is None:
            raise ConversionError(f"{w}: {op} with a constant first operand is not supported")
        c = np.broadcast_to(np.asarray(c, np.float64), shape).reshape(-1)
        if op == "Sub" and not first:
            c = -c
        unit_op = WITH_CONSTANT[op][int(first)]
        if unit_op == "pow" and np.all(c == 2):
            layer = Elementwise("square")
        elif unit_op == "pow" and np.all(c == 0.5):
            layer = Elementwise("sqrt")
        elif unit_op == "add" and not np.any(c):
            return View(data.vid, np.broadcast_to(data.pos, shape).copy())
        elif unit_op == "mul" and np.all(c == 1):
            return View(data.vid, np.broadcast_to(data.pos, shape).copy())
        else:
            layer = Elementwise(unit_op, c)
        return self._compute(View(data.vid, np.broadcast_to(data.pos, shape)), layer, shape)

    def _conv(self, node, ins, a, w) -> View:
        x, W = ins[0], ins[1]
        b = ins[2] if len(ins) > 2 else None
        if not isinstance(W, np.ndarray) or (b is not None and not isinstance(b, np.ndarray)):
            raise ConversionError(f"{w}: Conv weights must be constant")
        if W.ndim != 3 or len(x.shape) != 3 or x.shape[0] != 1:
            raise ConversionError(f"{w}: only 1-D convolutions of one (1, C, L) map are supported "
                                  f"(input {list(x.shape)}, weight {list(W.shape)})")
        k = W.shape[2]
        dil = int(a.get("dilations", [1])[0])
        stride = int(a.get("strides", [1])[0])
        pads = [int(p) for p in a.get("pads", [0, 0])]
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        L = x.shape[2]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            out = -(-L // stride)
            total = max((out - 1) * stride + (k - 1) * dil + 1 - L, 0)
            small = total // 2
            pads = [small, total - small] if auto == "SAME_UPPER" else [total - small, small]
        elif auto == "VALID":
            pads = [0, 0]
        layer = Conv1d(np.asarray(W, np.float64), None if b is None else np.asarray(b, np.float64), length=L,
                       stride=stride, dilation=dil, padding=(pads[0], pads[1]), groups=int(a.get("group", 1)))
        out = self._compute(x, layer, (1, layer.out_channels, layer.out_length))
        return out

    def _matmul(self, op, ins, a, w) -> View:
        x, Wt = ins[0], ins[1]
        if op == "Gemm":
            if a.get("transA", 0) or not isinstance(Wt, np.ndarray):
                raise ConversionError(f"{w}: Gemm with a transposed or computed A is not supported")
            Wt = Wt.T if a.get("transB", 0) else Wt
            Wt = Wt * float(a.get("alpha", 1.0))
            bias = None if len(ins) < 3 or ins[2] is None else np.broadcast_to(
                np.asarray(ins[2], np.float64) * float(a.get("beta", 1.0)), (Wt.shape[1],))
        else:
            bias = None
        if not isinstance(x, View) or not isinstance(Wt, np.ndarray) or Wt.ndim != 2:
            raise ConversionError(f"{w}: only data @ constant matrix is supported")
        K, O = Wt.shape
        lead = x.shape[:-1]
        n = int(np.prod(lead, dtype=np.int64))
        if n == 1:
            return self._compute(x, Dense(np.asarray(Wt.T, np.float64), bias), lead + (O,))
        conv = Conv1d(np.asarray(Wt.T, np.float64)[:, :, None], bias, length=n)
        xt = View(x.vid, x.pos.reshape(n, K).T)
        out = self._compute(xt, conv, (O, n))
        return View(out.vid, out.pos.T.reshape(lead + (O,)))

    def _reduce(self, node, ins, a, w) -> View:
        x = ins[0]
        r = len(x.shape)
        axes = a.get("axes")
        if axes is None and len(ins) > 1 and ins[1] is not None:
            axes = ins[1].reshape(-1).tolist()
        axes = list(range(r)) if not axes else [int(ax) % r for ax in axes]
        keep = int(a.get("keepdims", 1))
        rest = [d for d in range(r) if d not in axes]
        moved = np.transpose(x.pos, rest + axes)
        out_shape = tuple(x.shape[d] for d in rest)
        index = moved.reshape(int(np.prod(out_shape, dtype=np.int64)), -1)
        mode = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max"}[node.op_type]
        if np.any(index < 0):
            raise ConversionError(f"{w}: a reduction over padded zeros is not supported")
        out = self._emit(Reduce(index.astype(np.float64), mode), [x.vid])
        shape = tuple(1 if d in axes else x.shape[d] for d in range(r)) if keep else out_shape
        return View(out.vid, out.pos.reshape(shape))

    def _pool(self, op, ins, a, w) -> View:
        x = ins[0]
        if len(x.shape) != 3:
            raise ConversionError(f"{w}: only 1-D pooling of a (1, C, L) map is supported")
        k = int(a["kernel_shape"][0])
        stride = int(a.get("strides", [1])[0])
        dil = int(a.get("dilations", [1])[0])
        pads = [int(p) for p in a.get("pads", [0, 0])]
        if a.get("ceil_mode", 0):
            raise ConversionError(f"{w}: ceil_mode pooling is not supported")
        C, L = x.shape[1], x.shape[2]
        Lo = (L + sum(pads) - (k - 1) * dil - 1) // stride + 1
        q = np.arange(Lo)[:, None] * stride + np.arange(k)[None, :] * dil - pads[0]
        inside = (q >= 0) & (q < L)
        pos = x.pos.reshape(C, L)
        index = np.where(inside[None], pos[:, np.clip(q, 0, L - 1)], -1).reshape(C * Lo, k)
        if op == "AveragePool" and a.get("count_include_pad", 0) and np.any(index < 0):
            out = self._emit(Reduce(np.where(index < 0, -1, index).astype(np.float64), "sum"), [x.vid])
            out = self._emit(Elementwise("mul", np.full(C * Lo, 1.0 / k)), [out.vid])
        else:
            out = self._emit(Reduce(index.astype(np.float64), "max" if op == "MaxPool" else "mean"), [x.vid])
        return View(out.vid, out.pos.reshape(1, C, Lo))

    def _readers(self, name: str) -> int:
        """How many node inputs, in the graph and all its branches, read ``name``."""
        if not hasattr(self, "_reader_counts"):
            counts: dict = {}
            stack = list(self.g.nodes)
            while stack:
                n = stack.pop()
                for x in n.input:
                    counts[x] = counts.get(x, 0) + 1
                stack.extend(nd for at in n.attribute if at.type == onnx.AttributeProto.GRAPH for nd in at.g.node)
            self._reader_counts = counts
        return self._reader_counts.get(name, 0)

    def _batchnorm(self, node, ins, a, w) -> View:
        """Inference BatchNormalization: folded into the Conv1d or Dense that alone feeds it, else
        a scale and a shift per channel (axis 1)."""
        x, scale, bias, mean, var = ins[:5]
        if not all(isinstance(v, np.ndarray) for v in (scale, bias, mean, var)):
            raise ConversionError(f"{w}: BatchNormalization parameters must be constant")
        eps = float(a.get("epsilon", 1e-5))
        g = np.asarray(scale, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
        s = np.asarray(bias, np.float64) - np.asarray(mean, np.float64) * g
        prev = self.layers[x.vid] if 0 <= x.vid == len(self.layers) - 1 else None
        if (isinstance(prev, Conv1d) and prev.activation.name == "Identity" and self._readers(node.input[0]) == 1
                and np.array_equal(x.pos.reshape(-1), np.arange(self._width(x.vid)))
                and x.shape[1] == prev.out_channels == g.size):
            b = prev.b if prev.b is not None else np.zeros(g.size)
            self.layers[x.vid] = replace(prev, W=prev.W * g[:, None, None], b=b * g + s)
            return x
        shape = (1, -1) + (1,) * (len(x.shape) - 2)
        mul = np.broadcast_to(g.reshape(shape), x.shape).reshape(-1)
        add = np.broadcast_to(s.reshape(shape), x.shape).reshape(-1)
        v = self._compute(x, Elementwise("mul", mul))
        return self._compute(v, Elementwise("add", add))

    def _layernorm(self, ins, a, w) -> View:
        x, gamma = ins[0], ins[1]
        beta = ins[2] if len(ins) > 2 else None
        r = len(x.shape)
        if int(a.get("axis", -1)) % r != r - 1:
            raise ConversionError(f"{w}: LayerNormalization over more than the last axis is not supported")
        n = x.shape[-1]
        return self._compute(x, LayerNorm(np.broadcast_to(np.asarray(gamma, np.float64), (n,)).copy(),
                                          None if beta is None else np.broadcast_to(np.asarray(beta, np.float64), (n,)).copy(),
                                          eps=float(a.get("epsilon", 1e-5))))

    def _softmax(self, x, a, w) -> View:
        r = len(x.shape)
        ax = int(a.get("axis", -1)) % r
        if any(x.shape[d] != 1 for d in range(r) if d != ax):
            raise ConversionError(f"{w}: Softmax over one axis of a tensor with other non-unit axes is not supported")
        return self._compute(x, Activation("Softmax"))

    def _clip(self, ins, a) -> View:
        x = ins[0]
        lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
        hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
        n = int(np.prod(x.shape))
        if lo is not None:
            x = self._compute(x, Elementwise("max", np.full(n, float(np.asarray(lo)))))
        if hi is not None:
            x = self._compute(x, Elementwise("min", np.full(n, float(np.asarray(hi)))))
        return x

    # ------------------------------------------------------------------ recurrent nodes
    def _recurrent(self, node, ins, a, w) -> list:
        op = node.op_type
        cls, G, nacts = RECURRENT[op]
        x = ins[0]
        if not isinstance(x, View) or not all(isinstance(v, np.ndarray) for v in ins[1:3]):
            raise ConversionError(f"{w}: X must come from the data and W, R be constant")
        direction = a.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else str(direction)
        if direction != "forward" or direction not in DIRECTIONS:
            raise ConversionError(f"{w}: a {direction} recurrent node in a graph of one frame per call "
                                  "cannot continue across calls")
        if int(a.get("layout", 0)) != 0 or len(x.shape) != 3 or x.shape[0] != 1 or x.shape[1] != 1:
            raise ConversionError(f"{w}: X has shape {list(x.shape)}; a graph of one frame per call steps its "
                                  "recurrent nodes once, with X of shape (1, 1, input)")
        for k, what in ((5, "initial_h"), (6, "initial_c"))[:2 if op == "LSTM" else 1]:
            v = ins[k] if len(ins) > k else None
            if not isinstance(v, Port):
                raise ConversionError(
                    f"{w}: {what} is not fed from a state input, so one call does not continue the last one; "
                    "a graph of one frame per call must pass the recurrent state in and out")
        W = np.asarray(ins[1], np.float64)
        R = np.asarray(ins[2], np.float64)
        H = int(a.get("hidden_size", R.shape[-1]))
        kw = dict(W=W, R=R, direction="forward", clip=a.get("clip"), name=node.name or op)
        if a.get("activations"):
            names = [n.decode() if isinstance(n, bytes) else n for n in a["activations"]]
            canon = {k.lower(): k for k in ACTIVATIONS}
            kw["activations"] = [act(canon.get(n.lower(), n)) for n in names]
        if len(ins) > 3 and isinstance(ins[3], np.ndarray):
            B = np.asarray(ins[3], np.float64)
            kw["Wb"], kw["Rb"] = B[:, :G * H], B[:, G * H:]
        if op == "LSTM":
            kw["input_forget"] = bool(a.get("input_forget", 0))
        if op == "GRU":
            kw["linear_before_reset"] = bool(a.get("linear_before_reset", 0))
        h = self._compute(View(x.vid, x.pos.reshape(-1)), cls(**kw), (1, 1, 1, H))
        outs = [h, View(h.vid, h.pos.reshape(1, 1, H))]
        if op == "LSTM":
            outs.append(Port(np.zeros((1, 1, H)), "next state"))
        return outs[:len(node.output)]

    # ------------------------------------------------------------------ result
    def _network(self, outputs: list[str] | None):
        names = outputs or self.g.outputs
        found = [(n, self.env.get(n)) for n in names]
        data = [(n, v) for n, v in found if isinstance(v, View)]
        if outputs:
            for n, v in found:
                if not isinstance(v, View):
                    raise ConversionError(f"outputs: tensor {n!r} is not computed from the input {self.input_name!r}")
        elif len(data) != 1:
            raise ConversionError(f"cannot tell the data output among {names}; name it with outputs=['tensor_name']")
        if not self.layers:
            raise ConversionError(f"output {data[0][0]!r}: no layer between the input and it")
        ends = [self._laid_out(v) for _, v in data]
        if len(ends) > 1:
            self._emit(Concat(), ends)
        elif ends[0] != len(self.layers) - 1:
            self._emit(Rearrange(np.arange(self._width(ends[0]))), ends)
        net = normalise(self.layers, source=f"outputs {[n for n, _ in data]}", input_size=self.input_size,
                        name=self.name, sources=self.sources)
        if len(ends) == 1:
            return net
        return Network(net.layers, input_size=net.input_size, name=net.name, sources=net.sources,
                       outputs=[int(np.prod(v.shape)) for _, v in data])


class _EnvFolder(Folder):
    """The folder's op table, reading constants from the walk's scope (branch names included)."""

    def __init__(self, g: Graph, walk: "_FrameImporter"):
        super().__init__(g)
        self.walk = walk

    def value(self, name: str):
        v = self.walk.env.get(name) if name else None
        if isinstance(v, tuple) and v and v[0] == "lazy":
            v = self.walk._get(name)
        return v if isinstance(v, (np.ndarray, Zeros)) else None

    def _value(self, name: str):
        v = self.value(name)
        if v is None:
            from .fold import NotConstant
            raise NotConstant(name)
        return v


def _positive(k, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ConversionError(f"dims: {k!r} must be a positive integer, got {v!r}")
    return int(v)

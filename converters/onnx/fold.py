"""The flattened ONNX graph and constant folding over it.

``Graph`` is a model's main graph with local functions inlined and ``If`` nodes whose condition
is constant replaced by the taken branch (so constants one scope up become ordinary names).
``Folder`` evaluates any tensor that depends on constants only (initializers, Constant nodes and
cones of shape/plumbing/arithmetic ops over them) with numpy. A zero tensor whose shape depends on
the data (``ConstantOfShape(Shape(x) ...)``, the usual way exporters build zero initial states) folds
to ``Zeros``. Helpers at the bottom read opset-dependent operator parameters (Slice, Squeeze, Split).

Memory: inlining is sized before it is done, and every constant the folder builds is checked
against the load budget (``streamlstm.budget``) before it is allocated, counting the constants
it already holds. When a tensor cannot be folded because an op over constants failed (a bad
Reshape, Gather, Concat ...), ``Folder.why`` gives the node and the reason.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from streamlstm.budget import LoadBudget, budget_for
from streamlstm.errors import ConversionError

from .load import to_array


@dataclass(frozen=True)
class Zeros:
    """An all-zero tensor whose shape is not known statically (None) or is given."""

    shape: tuple | None = None

    def reshape(self, shape) -> "Zeros":
        return Zeros(tuple(int(s) for s in shape) if shape is not None else None)


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def where(node: onnx.NodeProto, index: int | None = None) -> str:
    """How an error message names a node: name, op type and position."""
    pos = f"#{index}" if index is not None else "?"
    if node.name:
        return f"node {node.name!r} (op {node.op_type}, graph position {pos})"
    out = node.output[0] if node.output else "?"
    return f"unnamed node producing {out!r} (op {node.op_type}, graph position {pos})"


@dataclass
class Graph:
    """A flat view of the model's graph; see the module docstring."""

    nodes: list
    initializers: dict            # name -> TensorProto
    inputs: list                  # graph inputs (ValueInfoProto), initializer-backed ones included
    outputs: list                 # graph output names
    opset: int
    value_info: dict = field(default_factory=dict)   # name -> ValueInfoProto
    producer: dict = field(default_factory=dict)     # tensor name -> node index
    consumers: dict = field(default_factory=dict)    # tensor name -> [node index]
    budget: LoadBudget | None = None                 # what folding may allocate

    def index(self) -> None:
        self.producer, self.consumers = {}, {}
        for i, n in enumerate(self.nodes):
            for o in n.output:
                if o:
                    self.producer[o] = i
            for x in n.input:
                if x:
                    self.consumers.setdefault(x, []).append(i)

    @property
    def input_names(self) -> list[str]:
        return [v.name for v in self.inputs]

    def shape(self, name: str) -> list | None:
        """Static shape of a tensor: ints for known dims, None for unknown ones; None if unranked."""
        vi = self.value_info.get(name)
        if vi is None or not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in vi.type.tensor_type.shape.dim]

    def elem_type(self, name: str) -> int:
        vi = self.value_info.get(name)
        if vi is not None and vi.type.HasField("tensor_type"):
            return vi.type.tensor_type.elem_type
        t = self.initializers.get(name)
        return t.data_type if t is not None else 0


def build_graph(model: onnx.ModelProto) -> Graph:
    """Flatten the model: inline local functions and constant-condition Ifs, run shape inference."""
    opset = 0
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            opset = o.version
    if opset == 0:
        raise ConversionError("ONNX model imports no default-domain opset")
    budget = budget_for("ONNX model", model.ByteSize())
    budget.take(len(model.graph.node) * NODE_OVERHEAD_BYTES, "the graph's nodes")
    if len(model.functions):
        budget.take(_inlined_bytes(model), "inlining the model's local functions")
        try:
            from onnx import inliner
            model = inliner.inline_local_functions(model)
        except Exception as e:
            raise ConversionError(f"cannot inline the model's local functions ({e})") from None
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:
        inferred = model
    g = model.graph
    vi = {}
    for v in list(inferred.graph.value_info) + list(g.input) + list(g.output):
        if v.type.HasField("tensor_type"):
            vi[v.name] = v
    inits = {t.name: t for t in g.initializer}
    for st in g.sparse_initializer:
        inits[st.values.name] = _densify(st, budget)
    graph = Graph(nodes=list(g.node), initializers=inits, inputs=list(g.input),
                  outputs=[o.name for o in g.output], opset=opset, value_info=vi, budget=budget)
    graph.index()
    _inline_constant_ifs(graph)
    return graph


# What one node costs in memory beyond its serialized bytes (the protobuf and Python objects).
NODE_OVERHEAD_BYTES = 128


def _inlined_bytes(model: onnx.ModelProto) -> int:
    """Bytes the main graph's nodes would take once every local function call is inlined,
    computed without inlining (a function calling another twice per level doubles per level)."""
    funcs = {(f.domain, f.name): f for f in model.functions}
    cost: dict = {}
    for key in funcs:  # iteratively, callees first, so a deep call chain needs no deep recursion
        stack = [(key, False)]
        active: set = set()
        while stack:
            k, expanded = stack.pop()
            if k in cost:
                continue
            callees = [(n.domain, n.op_type) for n in funcs[k].node if (n.domain, n.op_type) in funcs]
            if not expanded:
                if k in active:
                    raise ConversionError(f"local function {k[1]!r} (domain {k[0]!r}) calls itself")
                active.add(k)
                stack.append((k, True))
                for c in callees:
                    if c in active and c not in cost:
                        raise ConversionError(f"local function {c[1]!r} (domain {c[0]!r}) calls itself")
                    stack.append((c, False))
                continue
            active.discard(k)
            cost[k] = sum(cost[(n.domain, n.op_type)] if (n.domain, n.op_type) in funcs
                          else n.ByteSize() + NODE_OVERHEAD_BYTES for n in funcs[k].node)
    return sum(cost.get((n.domain, n.op_type), n.ByteSize() + NODE_OVERHEAD_BYTES) for n in model.graph.node)


def _densify(st: onnx.SparseTensorProto, budget: LoadBudget | None = None) -> onnx.TensorProto:
    values = to_array(st.values)
    idx = to_array(st.indices).astype(np.int64)
    dims = tuple(int(d) for d in st.dims)
    n = math.prod(dims)
    if any(d < 0 for d in dims) or n > FOLD_FLOOR + 64 * values.size:
        raise ConversionError(f"sparse tensor {st.values.name!r}: dims {list(dims)} ({n} elements) are "
                              f"negative or too large for its {values.size} stored values")
    if budget is not None:  # the dense array, then its TensorProto copy
        budget.take(2 * n * values.dtype.itemsize, f"sparse tensor {st.values.name!r}")
    flat = np.zeros(n, values.dtype)
    try:
        flat[np.ravel_multi_index(tuple(idx.T), dims) if idx.ndim == 2 else idx] = values
    except (ValueError, IndexError) as e:
        raise ConversionError(f"sparse tensor {st.values.name!r}: bad indices ({e})") from None
    return onnx.numpy_helper.from_array(flat.reshape(dims), st.values.name)


def _inline_constant_ifs(graph: Graph) -> None:
    for _ in range(1000):
        folder = Folder(graph)
        for i, n in enumerate(graph.nodes):
            if n.op_type != "If" or n.domain not in ("", "ai.onnx"):
                continue
            cond = folder.value(n.input[0])
            if not isinstance(cond, np.ndarray) or cond.size != 1:
                continue
            a = attrs(n)
            branch = a["then_branch"] if bool(cond.reshape(-1)[0]) else a["else_branch"]
            graph.nodes[i:i + 1] = _splice_branch(branch, n, i, graph)
            graph.index()
            break
        else:
            return


def _splice_branch(branch: onnx.GraphProto, node: onnx.NodeProto, i: int, graph: Graph) -> list:
    """The branch's nodes with its local names prefixed, then Identities onto the If's outputs."""
    prefix = f"{node.name or 'if'}#{i}/"
    local = {t.name for t in branch.initializer}
    for bn in branch.node:
        local.update(o for o in bn.output if o)
    ren = {name: prefix + name for name in local}
    for t in branch.initializer:
        c = onnx.TensorProto()
        c.CopyFrom(t)
        c.name = ren[t.name]
        graph.initializers[c.name] = c
    out = []
    for bn in branch.node:
        c = onnx.NodeProto()
        c.CopyFrom(bn)
        c.input[:] = [ren.get(x, x) for x in bn.input]
        c.output[:] = [ren.get(x, x) for x in bn.output]
        out.append(c)
    for bo, o in zip(branch.output, node.output):
        if o:
            out.append(helper.make_node("Identity", [ren.get(bo.name, bo.name)], [o],
                                        name=f"{prefix}out:{o}"))
    for v in branch.value_info:
        if v.name in ren:
            c = onnx.ValueInfoProto()
            c.CopyFrom(v)
            c.name = ren[v.name]
            graph.value_info[c.name] = c
    return out


class NotConstant(Exception):
    """A tensor is not a constant; ``reason`` says why when an op over constants failed."""

    def __init__(self, what: str = "", reason: str | None = None):
        super().__init__(what)
        self.reason = reason


# A folded constant may hold at most this many elements plus one per byte of tensor data the file
# stores: weights computed from initializers never need more, and a ConstantOfShape/Expand/
# broadcast of a few bytes cannot become a multi-GB allocation.
FOLD_FLOOR = 1 << 24


def fold_limit(graph: Graph) -> int:
    return FOLD_FLOOR + sum(t.ByteSize() for t in graph.initializers.values())


def _broadcast_size(*shapes) -> int:
    try:
        return math.prod(np.broadcast_shapes(*shapes))
    except ValueError:
        return 0  # the op itself reports the mismatch


class Folder:
    """Constant evaluation of tensors by name; ``overrides`` pins given names to values."""

    def __init__(self, graph: Graph, overrides: dict | None = None):
        self.g = graph
        self.overrides = dict(overrides or {})
        self.memo: dict = {}
        self.reasons: dict = {}       # name -> why folding it failed (an op over constants raised)
        self._active: set = set()
        self.limit = fold_limit(graph)
        self.budget = graph.budget if graph.budget is not None else LoadBudget("ONNX model", 0)
        self.held = 0                 # bytes of the constants in ``memo``

    def check_size(self, node, n: int, itemsize: int = 8) -> None:
        """Refuse to fold ``node`` into a constant of ``n`` elements when that is beyond the limit
        or, with the constants already held, beyond the load budget."""
        if n > self.limit:
            raise ConversionError(f"{where(node)}: folding it would build a constant of {n} elements, "
                                  f"more than the model's stored data can justify (limit {self.limit})")
        self.budget.check(n * itemsize, f"{where(node)}: folding it", held=self.held)

    def _hold(self, v) -> None:
        if isinstance(v, np.ndarray):
            self.held += v.nbytes

    def why(self, name: str) -> str | None:
        """Why ``name`` is not constant when the cause is a failed op over constants, else None."""
        return self.reasons.get(name)

    def value(self, name: str):
        """np.ndarray or Zeros if the tensor is constant, else None."""
        if not name:
            return None
        if name not in self.memo:
            self._prefold(name)
        try:
            return self._value(name)
        except NotConstant:
            return None
        except RecursionError:
            self.reasons.setdefault(name, f"the constants it is computed from are nested deeper than "
                                          f"{sys.getrecursionlimit()} levels")
            return None
        except MemoryError:
            self.reasons[name] = "out of memory while folding it"
            return None

    def _prefold(self, name: str) -> None:
        """Fold ``name``'s ancestors first, deepest first, without recursion: a 20,000-node chain
        of constants then folds one node at a time instead of 20,000 nested calls."""
        order, seen, stack = [], set(), [(name, False)]
        while stack:
            x, done = stack.pop()
            if done:
                order.append(x)
                continue
            if x in seen or x in self.memo or x in self.overrides or x not in self.g.producer:
                continue
            seen.add(x)
            stack.append((x, True))
            node = self.g.nodes[self.g.producer[x]]
            if node.op_type in _FOLDERS or node.op_type == "Constant":
                stack.extend((i, False) for i in node.input if i)
        for x in order[:-1]:
            try:
                self._value(x)
            except (NotConstant, RecursionError):
                pass

    def _value(self, name: str):
        if name in self.memo:
            v = self.memo[name]
            if v is None:
                raise NotConstant(name, self.reasons.get(name))
            return v
        if name in self.overrides:
            v = self.overrides[name]
        elif name in self.g.producer:
            if name in self._active:
                raise NotConstant(name)
            self._active.add(name)
            try:
                i = self.g.producer[name]
                node = self.g.nodes[i]
                try:
                    outs = self._eval(node)
                except NotConstant as e:
                    for o in node.output:
                        self.memo[o] = None
                        if e.reason:
                            self.reasons[o] = e.reason
                    raise
                for o, v in zip(node.output, outs):
                    self.memo[o] = v
                    self._hold(v)
                v = self.memo.get(name)
            finally:
                self._active.discard(name)
        elif name in self.g.initializers:
            # an input with a default value counts as a weight here (state ports are handled apart)
            t = self.g.initializers[name]
            self.budget.check(t.ByteSize(), f"initializer {name!r}", held=self.held)
            v = to_array(t)
            self._hold(v)
        else:
            v = None
        self.memo[name] = v
        if v is None:
            raise NotConstant(name)
        return v

    def _ins(self, node, optional_from: int = 99) -> list:
        vals = []
        for k, x in enumerate(node.input):
            if not x:
                vals.append(None)
            elif k >= optional_from:
                vals.append(self.value(x))
            else:
                vals.append(self._value(x))
        return vals

    def _eval(self, node: onnx.NodeProto) -> list:
        if node.domain not in ("", "ai.onnx"):
            raise NotConstant(node.op_type)
        op, a = node.op_type, attrs(node)
        if op == "Constant":
            return [_constant_attr(node, a)]
        fn = _FOLDERS.get(op)
        if fn is None:
            raise NotConstant(op)
        if op in ("ConstantOfShape", "Expand"):
            return [np.asarray(v) if isinstance(v, np.generic) else v for v in fn(self, node, a)]
        vals = self._ins(node)
        if any(isinstance(v, Zeros) for v in vals):
            return _zeros_rule(self, node, a, vals)
        arrays = [v for v in vals if isinstance(v, np.ndarray)]
        self.check_size(node, max([_out_size(op, a, vals)] + [v.size for v in arrays]))
        try:
            out = fn(self, node, a, vals)
        except (NotConstant, ConversionError):
            raise
        except MemoryError:
            raise NotConstant(op, f"{where(node)}: out of memory while folding it") from None
        except Exception as e:
            raise NotConstant(op, f"{where(node)}: folding it failed: {type(e).__name__}: {e}") from None
        # numpy returns 0-d results as scalars; a folded value is always an array
        return [np.asarray(v) if isinstance(v, np.generic) else v for v in out]


def _constant_attr(node, a):
    if "value" in a:
        return to_array(a["value"])
    if "value_float" in a:
        return np.array(a["value_float"], np.float32)
    if "value_floats" in a:
        return np.array(a["value_floats"], np.float32)
    if "value_int" in a:
        return np.array(a["value_int"], np.int64)
    if "value_ints" in a:
        return np.array(a["value_ints"], np.int64)
    if "sparse_value" in a:
        return to_array(_densify(a["sparse_value"]))
    raise NotConstant("Constant without a numeric value")


def _np_dtype(to: int):
    return onnx.helper.tensor_dtype_to_np_dtype(to)


def _ints(v) -> list[int]:
    return [int(x) for x in np.asarray(v).reshape(-1)]


def axes_param(folder: Folder, node, a, opset_axes_input: int, input_index: int = 1):
    """Axes of Squeeze/Unsqueeze/Reduce*: an attribute before ``opset_axes_input``, else an input."""
    if folder.g.opset < opset_axes_input:
        return list(a["axes"]) if "axes" in a else None
    if len(node.input) > input_index and node.input[input_index]:
        v = folder.value(node.input[input_index])
        if not isinstance(v, np.ndarray):
            raise ConversionError(f"{where(node)}: axes are not constant")
        return _ints(v)
    return list(a["axes"]) if "axes" in a else None


def slice_params(folder: Folder, node, a, rank: int):
    """(starts, ends, axes, steps) of a Slice, axes normalised to 0..rank-1."""
    if folder.g.opset < 10:
        starts, ends = list(a["starts"]), list(a["ends"])
        axes = list(a.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        vals = []
        for k in range(1, 5):
            if len(node.input) > k and node.input[k]:
                v = folder.value(node.input[k])
                if not isinstance(v, np.ndarray):
                    raise ConversionError(f"{where(node)}: slice parameters are not constant")
                vals.append(_ints(v))
            else:
                vals.append(None)
        starts, ends, axes, steps = vals
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
    axes = [ax + rank if ax < 0 else ax for ax in axes]
    return starts, ends, axes, steps


def split_sizes(folder: Folder, node, a, dim: int | None) -> list[int]:
    """Chunk sizes of a Split along an axis of length ``dim``."""
    sizes = None
    if folder.g.opset < 13:
        sizes = list(a["split"]) if "split" in a else None
    elif len(node.input) > 1 and node.input[1]:
        v = folder.value(node.input[1])
        if not isinstance(v, np.ndarray):
            raise ConversionError(f"{where(node)}: split sizes are not constant")
        sizes = _ints(v)
    if sizes is not None:
        return sizes
    n = int(a.get("num_outputs", len(node.output)))
    if dim is None:
        raise ConversionError(f"{where(node)}: cannot split an axis of unknown length")
    chunk = -(-dim // n)
    sizes = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
    return sizes


def py_slice(start: int, end: int, step: int) -> slice:
    big = 2 ** 62
    end = max(min(end, big), -big)
    return slice(start, end, step)


# ---------------------------------------------------------------- numpy implementations
def _f_identity(f, n, a, v):
    return [v[0]] + ([None] * (len(n.output) - 1))


def _f_cast(f, n, a, v):
    to = np.dtype(_np_dtype(a["to"]))
    if to.kind not in "biuf":
        raise ValueError(f"cannot cast constants to {to} (data type {a['to']}): not a number type")
    return [v[0].astype(to)]


def _f_castlike(f, n, a, v):
    return [v[0].astype(v[1].dtype)]


def _f_concat(f, n, a, v):
    return [np.concatenate([x for x in v if x is not None], axis=a["axis"])]


def _f_unsqueeze(f, n, a, v):
    axes = axes_param(f, n, a, 13)
    x = v[0]
    r = x.ndim + len(axes)
    for ax in sorted(ax + r if ax < 0 else ax for ax in axes):
        x = np.expand_dims(x, ax)
    return [x]


def _f_squeeze(f, n, a, v):
    axes = axes_param(f, n, a, 13)
    x = v[0]
    if axes is None:
        return [np.squeeze(x)]
    return [np.squeeze(x, axis=tuple(ax + x.ndim if ax < 0 else ax for ax in axes))]


def _f_transpose(f, n, a, v):
    perm = a.get("perm")
    return [np.transpose(v[0], perm if perm else None)]


def _f_gather(f, n, a, v):
    idx = v[1].astype(np.int64)
    return [np.take(v[0], idx, axis=a.get("axis", 0))]


def _f_reshape(f, n, a, v):
    x = v[0]
    if f.g.opset < 5:
        shape = list(a["shape"])
    else:
        shape = _ints(v[1])
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(shape)]


def _f_flatten(f, n, a, v):
    x, ax = v[0], a.get("axis", 1)
    ax = ax + x.ndim if ax < 0 else ax
    return [x.reshape(int(np.prod(x.shape[:ax])), -1)]


def _f_slice(f, n, a, v):
    x = v[0]
    starts, ends, axes, steps = slice_params(f, n, a, x.ndim)
    sl = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        sl[ax] = py_slice(s, e, st)
    return [x[tuple(sl)]]


def _f_split(f, n, a, v):
    x, ax = v[0], a.get("axis", 0)
    ax = ax + x.ndim if ax < 0 else ax
    sizes = split_sizes(f, n, a, x.shape[ax])
    return list(np.split(x, np.cumsum(sizes)[:-1], axis=ax))


def _f_shape(f, n, a, v):
    s = np.array(v[0].shape, np.int64)
    start, end = a.get("start", 0), a.get("end", None)
    return [s[start:end]]


def _divide(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ONNX Div: integer quotients truncate toward zero (numpy's ``//`` floors)."""
    if not np.issubdtype(x.dtype, np.integer):
        return x / y
    q = np.floor_divide(x, y)
    return q + ((np.remainder(x, y) != 0) & ((x < 0) != (y < 0))).astype(q.dtype)


def _binary(fn):
    def run(f, n, a, v):
        return [fn(v[0], v[1])]
    return run


def _out_size(op: str, a: dict, vals: list) -> int:
    """Elements an op that can grow its inputs would produce (0 for the others)."""
    arrs = [v for v in vals if isinstance(v, np.ndarray)]
    if op in ("Add", "Sub", "Mul", "Div") and len(arrs) == 2:
        return _broadcast_size(arrs[0].shape, arrs[1].shape)
    if op == "Concat":
        return sum(v.size for v in arrs)
    if op == "Gather" and len(arrs) == 2 and arrs[0].ndim:
        ax = int(a.get("axis", 0)) % arrs[0].ndim
        return arrs[1].size * (arrs[0].size // max(arrs[0].shape[ax], 1))
    return 0


def _f_constant_of_shape(f, n, a):
    val = to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
    shape = f.value(n.input[0])
    if isinstance(shape, np.ndarray):
        dims = _ints(shape)
        if any(d < 0 for d in dims):
            raise ConversionError(f"{where(n)}: negative dimension in shape {dims}")
        f.check_size(n, math.prod(dims), val.dtype.itemsize)
        return [np.full(dims, val.reshape(-1)[0], val.dtype)]
    if np.all(val == 0):
        return [Zeros()]
    raise NotConstant("ConstantOfShape with a data-dependent shape")


def _f_expand(f, n, a):
    x = f._value(n.input[0])
    shape = f.value(n.input[1])
    if isinstance(x, np.ndarray) and isinstance(shape, np.ndarray):
        dims = _ints(shape)
        if any(d < 0 for d in dims):
            raise ConversionError(f"{where(n)}: negative dimension in shape {dims}")
        f.check_size(n, _broadcast_size(x.shape, dims), x.dtype.itemsize)
        return [x * np.ones(dims, x.dtype)]
    if isinstance(x, Zeros) or np.all(x == 0):
        return [Zeros()]
    # a learned initial state expanded over the (runtime) batch: with a batch of one it is itself
    return [x]


def _zeros_rule(f, node, a, vals):
    """Shape ops over an all-zero tensor of unknown shape stay all-zero."""
    op = node.op_type
    if op in ("Identity", "Cast", "CastLike", "Slice", "Gather", "Squeeze", "Unsqueeze", "Reshape",
              "Transpose", "Flatten", "Dropout") and isinstance(vals[0], Zeros):
        return [Zeros()] + [None] * (len(node.output) - 1)
    if op == "Split" and isinstance(vals[0], Zeros):
        return [Zeros()] * len(node.output)
    if op == "Concat" and all(isinstance(v, Zeros) or (isinstance(v, np.ndarray) and not np.any(v))
                              for v in vals if v is not None):
        return [Zeros()]
    if op == "Mul" and any(isinstance(v, Zeros) for v in vals):
        return [Zeros()]
    raise NotConstant(f"{op} over zeros of unknown shape")


_FOLDERS = {
    "Identity": _f_identity, "Dropout": _f_identity,
    "Cast": _f_cast, "CastLike": _f_castlike,
    "Concat": _f_concat, "Unsqueeze": _f_unsqueeze, "Squeeze": _f_squeeze,
    "Transpose": _f_transpose, "Gather": _f_gather, "Reshape": _f_reshape, "Flatten": _f_flatten,
    "Slice": _f_slice, "Split": _f_split, "Shape": _f_shape,
    "Add": _binary(np.add), "Sub": _binary(np.subtract), "Mul": _binary(np.multiply),
    "Div": _binary(_divide),
    "Neg": lambda f, n, a, v: [-v[0]],
    "ConstantOfShape": _f_constant_of_shape, "Expand": _f_expand,
}
